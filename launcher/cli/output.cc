#include "kubetrain/launcher/cli/output.h"

#include <algorithm>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "yaml-cpp/yaml.h"

namespace kubetrain::cli {
namespace {

void EmitYaml(const nlohmann::json& v, YAML::Emitter& e) {
  if (v.is_object()) {
    e << YAML::BeginMap;
    for (auto it = v.begin(); it != v.end(); ++it) {
      e << YAML::Key << it.key() << YAML::Value;
      EmitYaml(it.value(), e);
    }
    e << YAML::EndMap;
  } else if (v.is_array()) {
    e << YAML::BeginSeq;
    for (const auto& item : v) EmitYaml(item, e);
    e << YAML::EndSeq;
  } else if (v.is_string()) {
    e << v.get<std::string>();
  } else if (v.is_null()) {
    e << YAML::Null;
  } else {
    e << v.dump();
  }
}

}  // namespace

absl::StatusOr<OutputFormat> ParseOutputFormat(const std::string& text) {
  if (text.empty() || text == "table") return OutputFormat::kTable;
  if (text == "json") return OutputFormat::kJson;
  if (text == "yaml") return OutputFormat::kYaml;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown output format \"", text, "\"; use table, json or yaml"));
}

nlohmann::json ToJson(const google::protobuf::Message& message) {
  std::string text;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &text, options);
  return nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
}

void PrintStructured(const nlohmann::json& value, OutputFormat format, std::ostream& out) {
  if (format == OutputFormat::kYaml) {
    YAML::Emitter e;
    EmitYaml(value, e);
    out << e.c_str() << "\n";
  } else {
    out << value.dump(2) << "\n";
  }
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line, row[i]);
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

void PrintError(const absl::Status& status) {
  std::cerr << "kubetrain: " << status.message() << "\n";
}

std::string LocalTime(int64_t unix_ms) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(unix_ms),
                          absl::LocalTimeZone());
}

}  // namespace kubetrain::cli
