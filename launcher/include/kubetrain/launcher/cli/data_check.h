// Submit-time checks of a job's data paths, so that a bad one fails `job validate` / `job create`
// with the file, line and field instead of failing later in the worker agent: every input and
// output path must be a form kubetrain reads (kubetrain/storage/data_uri.h — no escaping "..", no
// SAS token in the URL, no abfss://), and every azureml://datastores/<name> must be registered in
// the workspace (`workspaceblobstore` always exists); a local input must match its type (a folder
// for uri_folder, a file for uri_file). `direct` paths are the script's business and not checked.
//
// Thread-safety: as the Workspace passed in.
#ifndef KUBETRAIN_LAUNCHER_CLI_DATA_CHECK_H_
#define KUBETRAIN_LAUNCHER_CLI_DATA_CHECK_H_

#include "kubetrain/launcher/spec/diagnostics.h"
#include "kubetrain/storage/workspace.h"
#include "kubetrain/v1/job.pb.h"

namespace kubetrain::cli {

void CheckDataPaths(const v1::JobSpec& spec, storage::Workspace& workspace,
                    spec::Diagnostics& diagnostics);

}  // namespace kubetrain::cli

#endif  // KUBETRAIN_LAUNCHER_CLI_DATA_CHECK_H_
