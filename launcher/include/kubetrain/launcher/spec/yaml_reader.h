// YamlReader: typed access to a parsed YAML document that records a Diagnostic, with
// file:line:column and field path, for every value of the wrong shape instead of throwing.
//
// Used by the job parser, the InstanceType parser and the node-list parser. Values set with
// `--set key=value` have no place in the file; the reader reports them with their origin instead.
//
// Ownership: holds references to the Diagnostics and the source text; both must outlive it.
// Thread-safety: not thread-safe; one reader per parse.
#ifndef KUBETRAIN_LAUNCHER_SPEC_YAML_READER_H_
#define KUBETRAIN_LAUNCHER_SPEC_YAML_READER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "kubetrain/launcher/spec/diagnostics.h"
#include "yaml-cpp/yaml.h"

namespace kubetrain::spec {

class YamlReader {
 public:
  YamlReader(std::string file, absl::string_view text, Diagnostics& diagnostics)
      : file_(std::move(file)), text_(text), diagnostics_(diagnostics) {}

  // Parses the whole text. On a syntax error records it (with yaml-cpp's position) and returns
  // nullopt. An empty document is an error: "the file is empty".
  std::optional<YAML::Node> Load();

  // Records that values under `field` came from `origin` (e.g. "--set compute=local").
  void AddOrigin(std::string field, std::string origin) {
    origins_[std::move(field)] = std::move(origin);
  }

  // Where `node` (the value of `field`) was written.
  Location At(const YAML::Node& node, absl::string_view field) const;
  // Where `needle` first appears in the text at or after `node`'s position; falls back to At(node).
  Location FindText(const YAML::Node& node, absl::string_view field,
                    absl::string_view needle) const;

  void Error(const YAML::Node& node, absl::string_view field, std::string message,
             std::string suggestion = "");
  void Warning(const YAML::Node& node, absl::string_view field, std::string message,
               std::string suggestion = "");

  // Checks that `node` is a mapping; records "expected a mapping, found ..." otherwise.
  bool ExpectMap(const YAML::Node& node, absl::string_view field);

  // Every key of mapping `node` must be in `known` or `ignored` (Azure ML keys kubetrain cannot
  // honour: a warning that names them). Others are errors with a did-you-mean suggestion.
  void CheckKeys(const YAML::Node& node, absl::string_view prefix,
                 const std::vector<std::string>& known,
                 const std::vector<std::string>& ignored = {});

  // Scalars. Each returns nullopt (with an error recorded) when the value has the wrong shape.
  std::optional<std::string> String(const YAML::Node& node, absl::string_view field);
  std::optional<int64_t> Int(const YAML::Node& node, absl::string_view field, int64_t min,
                             int64_t max);
  std::optional<bool> Bool(const YAML::Node& node, absl::string_view field);
  // A mapping of scalars to scalars (tags, environment variables, nodeSelector).
  std::optional<std::map<std::string, std::string>> StringMap(const YAML::Node& node,
                                                              absl::string_view field);

  // "a mapping", "a list", "a string", "nothing" — for messages.
  static std::string Describe(const YAML::Node& node);

  const std::string& file() const { return file_; }
  Diagnostics& diagnostics() { return diagnostics_; }

 private:
  std::string file_;
  absl::string_view text_;
  Diagnostics& diagnostics_;
  std::map<std::string, std::string> origins_;
};

// Reads a user's file whole. When it cannot be read, records an error naming the file and the
// reason and returns nullopt.
std::optional<std::string> ReadUserFile(const std::string& path, Diagnostics& diagnostics);

// Joins a field path: Field("inputs", "data") == "inputs.data"; Field("", "x") == "x".
std::string Field(absl::string_view prefix, absl::string_view key);

}  // namespace kubetrain::spec

#endif  // KUBETRAIN_LAUNCHER_SPEC_YAML_READER_H_
