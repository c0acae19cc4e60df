// Deterministic serialization (map fields in key order), for comparing and hashing records.
#ifndef KUBETRAIN_STORAGE_SRC_DETERMINISTIC_H_
#define KUBETRAIN_STORAGE_SRC_DETERMINISTIC_H_

#include <string>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/message_lite.h"

namespace kubetrain::storage::storage_internal {

inline std::string SerializeDeterministic(const google::protobuf::MessageLite& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

}  // namespace kubetrain::storage::storage_internal

#endif  // KUBETRAIN_STORAGE_SRC_DETERMINISTIC_H_
