// Runs the real `kubetrain` binary and checks its exit codes and help text.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/command.h"

namespace {

using ::testing::HasSubstr;

using ::kubetrain::testing::CommandResult;

CommandResult Cli(const std::string& args) {
  return ::kubetrain::testing::RunCommand(::kubetrain::testing::KubetrainCli() + args);
}

TEST(CliTest, HelpListsEveryCommandGroup) {
  CommandResult r = Cli("--help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const char* group : {"job", "compute", "instance-type", "workspace"}) {
    EXPECT_THAT(r.output, HasSubstr(group));
  }
}

TEST(CliTest, EverySubcommandHasHelp) {
  for (const char* cmd :
       {"job create", "job validate", "job show", "job list", "job stream", "job logs",
        "job metrics", "job cancel", "compute list", "compute show", "compute attach",
        "instance-type list", "instance-type show", "instance-type apply", "workspace serve",
        "datastore create", "datastore list", "datastore show"}) {
    CommandResult r = Cli(std::string(cmd) + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd << ": " << r.output;
    EXPECT_THAT(r.output, HasSubstr("Usage")) << cmd;
  }
}

TEST(CliTest, UnknownCommandIsAUsageError) {
  CommandResult r = Cli("jbo list");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

TEST(CliTest, MissingRequiredFlagIsAUsageError) {
  CommandResult r = Cli("job create");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--file"));
}

}  // namespace
