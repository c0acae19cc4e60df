// Output helpers shared by the CLI's command groups: aligned tables for people, JSON / YAML for
// scripts (`-o json|yaml`), and error printing.
//
// Thread-safety: functions write to the given stream; not for concurrent use on one stream.
#ifndef KUBETRAIN_LAUNCHER_CLI_OUTPUT_H_
#define KUBETRAIN_LAUNCHER_CLI_OUTPUT_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"

namespace kubetrain::cli {

enum class OutputFormat { kTable, kJson, kYaml };

// Parses "-o" values: "", "table", "json", "yaml". InvalidArgument names the accepted values.
absl::StatusOr<OutputFormat> ParseOutputFormat(const std::string& text);

// A protobuf message as JSON (proto3 JSON mapping, original field names, defaults omitted).
nlohmann::json ToJson(const google::protobuf::Message& message);

// A list of protobuf messages as a JSON array of ToJson(message).
template <typename Messages>
nlohmann::json ToJsonArray(const Messages& messages) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& m : messages) out.push_back(ToJson(m));
  return out;
}

// Prints `value` as pretty JSON or as YAML.
void PrintStructured(const nlohmann::json& value, OutputFormat format, std::ostream& out);

// A table with a header row; columns are padded to their widest cell.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// A Unix time in milliseconds as "YYYY-MM-DD HH:MM:SS" in the local time zone.
std::string LocalTime(int64_t unix_ms);

// "kubetrain: <message>" on stderr.
void PrintError(const absl::Status& status);

}  // namespace kubetrain::cli

#endif  // KUBETRAIN_LAUNCHER_CLI_OUTPUT_H_
