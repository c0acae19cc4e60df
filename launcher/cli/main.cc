#include "kubetrain/launcher/cli/cli.h"

int main(int argc, char** argv) { return kubetrain::cli::RunCli(argc, argv); }
