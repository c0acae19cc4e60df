// Reading kubeconfigs: tokens, certificates, CA bundles, insecure-skip-tls-verify, and the clear
// errors for what kubetrain does not support (exec plugins, auth providers, basic auth).
#include "kubetrain/launcher/backends/kubernetes/kubeconfig.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kubetrain::backends::kubernetes {
namespace {

using ::testing::HasSubstr;

std::string Config(const std::string& cluster, const std::string& user) {
  return "apiVersion: v1\nkind: Config\ncurrent-context: main\n"
         "contexts:\n"
         "- name: main\n  context: {cluster: c1, user: u1, namespace: team-a}\n"
         "- name: other\n  context: {cluster: c1, user: u2}\n"
         "clusters:\n- name: c1\n  cluster:\n" +
         cluster + "users:\n- name: u1\n  user:\n" + user +
         "- name: u2\n  user:\n    token: second\n";
}

TEST(KubeconfigTest, TokenCaDataAndContexts) {
  std::string ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  auto c = ParseKubeconfig(Config("    server: https://10.0.0.1:6443/\n"
                                  "    certificate-authority-data: " +
                                      absl::Base64Escape(ca) + "\n",
                                  "    token: abc123\n"),
                           "kc", "/tmp", "");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->context, "main");
  EXPECT_EQ(c->server, "https://10.0.0.1:6443");
  EXPECT_EQ(c->ca_pem, ca);
  EXPECT_EQ(c->bearer_token, "abc123");
  EXPECT_EQ(c->default_namespace, "team-a");
  EXPECT_TRUE(c->warnings.empty());
  auto other =
      ParseKubeconfig(Config("    server: https://x\n", "    token: abc\n"), "kc", "", "other");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->bearer_token, "second");
  auto missing =
      ParseKubeconfig(Config("    server: https://x\n", "    token: a\n"), "kc", "", "nope");
  EXPECT_THAT(missing.status().message(),
              HasSubstr("has no context \"nope\" (it has: main, other)"));
}

TEST(KubeconfigTest, FilesResolveAgainstTheKubeconfigFolder) {
  std::string dir = ::testing::TempDir() + "/kc-files";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/ca.crt") << "CA";
  std::ofstream(dir + "/client.crt") << "CERT";
  std::ofstream(dir + "/client.key") << "KEY";
  std::ofstream(dir + "/token") << "tok-from-file\n";
  std::ofstream(dir + "/config") << Config(
      "    server: https://x\n    certificate-authority: ca.crt\n",
      "    client-certificate: client.crt\n    client-key: " + dir + "/client.key\n");
  auto c = LoadKubeconfig(dir + "/config", "");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->ca_pem, "CA");
  EXPECT_EQ(c->client_cert_pem, "CERT");
  EXPECT_EQ(c->client_key_pem, "KEY");
  std::ofstream(dir + "/config2") << Config("    server: https://x\n", "    tokenFile: token\n");
  auto t = LoadKubeconfig(dir + "/config2", "");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->bearer_token, "tok-from-file");
  std::ofstream(dir + "/config3") << Config("    server: https://x\n",
                                            "    client-certificate: client.crt\n");
  EXPECT_THAT(LoadKubeconfig(dir + "/config3", "").status().message(),
              HasSubstr("without its key"));
}

TEST(KubeconfigTest, InsecureSkipTlsVerifyIsHonouredWithAWarning) {
  auto c = ParseKubeconfig(
      Config("    server: https://x\n    insecure-skip-tls-verify: true\n", "    token: a\n"), "kc",
      "", "");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->insecure_skip_tls_verify);
  ASSERT_EQ(c->warnings.size(), 1u);
  EXPECT_THAT(c->warnings[0], HasSubstr("not checked"));
}

TEST(KubeconfigTest, UnsupportedAuthenticationIsAClearError) {
  auto exec =
      ParseKubeconfig(Config("    server: https://x\n",
                             "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n"
                             "      command: kubelogin\n"),
                      "kc", "", "");
  EXPECT_EQ(exec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(exec.status().message(), HasSubstr("exec credential plugin (`kubelogin`)"));
  EXPECT_THAT(exec.status().message(), HasSubstr("token"));
  auto provider = ParseKubeconfig(
      Config("    server: https://x\n", "    auth-provider: {name: azure}\n"), "kc", "", "");
  EXPECT_THAT(provider.status().message(), HasSubstr("auth-provider"));
  auto basic = ParseKubeconfig(
      Config("    server: https://x\n", "    username: a\n    password: b\n"), "kc", "", "");
  EXPECT_THAT(basic.status().message(), HasSubstr("basic authentication"));
  EXPECT_THAT(ParseKubeconfig("[1, 2]", "kc", "", "").status().message(),
              HasSubstr("not a kubeconfig"));
}

TEST(KubeconfigTest, ContextResolvesWithoutReadingClustersOrUsers) {
  // The current-context, or the one asked for; its cluster and user need not be valid yet.
  std::string config = Config("    server: https://x\n", "    exec: {command: kubelogin}\n");
  auto current = ParseKubeconfigContext(config, "kc", "");
  ASSERT_TRUE(current.ok()) << current.status();
  EXPECT_EQ(*current, "main");
  auto other = ParseKubeconfigContext(config, "kc", "other");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(*other, "other");

  auto missing = ParseKubeconfigContext(config, "kc", "nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "kc has no context \"nope\" (it has: main, other)");

  std::string no_current =
      "contexts:\n- name: a\n  context: {cluster: c}\n- name: b\n  context: {cluster: c}\n";
  auto unset = ParseKubeconfigContext(no_current, "kc", "");
  EXPECT_EQ(unset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(unset.status().message(), "kc has no current-context; pass --context (one of: a, b)");
  // The full parse gives the same context errors.
  EXPECT_EQ(ParseKubeconfig(no_current, "kc", "", "").status().message(), unset.status().message());

  EXPECT_THAT(ParseKubeconfigContext("a: [", "kc", "").status().message(),
              HasSubstr("kc:1: not valid YAML"));
  auto unreadable = LoadKubeconfigContext("/no/such/kubeconfig", "");
  EXPECT_EQ(unreadable.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unreadable.status().message(),
              HasSubstr("cannot read the kubeconfig /no/such/kubeconfig"));
}

}  // namespace
}  // namespace kubetrain::backends::kubernetes
