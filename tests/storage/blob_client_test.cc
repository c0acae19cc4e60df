// BlobClient against a real Azurite started by the test (skips when Azurite cannot start).
#include "kubetrain/storage/blob_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "storage/blob/shared_key.h"
#include "tests/storage/azurite.h"

namespace kubetrain::storage {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(rng() & 0xff);
  return s;
}

// An account SAS for the blob service, signed with the account key (as the portal makes one).
std::string AccountSas(const std::string& permissions) {
  std::string key;
  absl::Base64Unescape(testing::kAzuriteKey, &key);
  const std::string version = "2021-08-06", expiry = "2099-01-01T00:00:00Z";
  std::string to_sign = absl::StrCat(testing::kAzuriteAccount, "\n", permissions, "\nb\nsco\n\n",
                                     expiry, "\n\nhttps,http\n", version, "\n\n");
  std::string sig = absl::Base64Escape(shared_key::HmacSha256(key, to_sign));
  std::string encoded;
  for (char c : sig) {
    if (c == '+')
      encoded += "%2B";
    else if (c == '/')
      encoded += "%2F";
    else if (c == '=')
      encoded += "%3D";
    else
      encoded += c;
  }
  return absl::StrCat("sv=", version, "&ss=b&srt=sco&sp=", permissions, "&se=", expiry,
                      "&spr=https,http&sig=", encoded);
}

class BlobClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    azurite_ = new testing::Azurite();
    start_ = azurite_->Start();
  }
  static void TearDownTestSuite() {
    delete azurite_;
    azurite_ = nullptr;
  }
  void SetUp() override {
    if (!start_.ok()) GTEST_SKIP() << start_.message();
  }
  std::unique_ptr<BlobClient> Client(const std::string& container, BlobClientOptions o = {}) {
    auto c = BlobClient::Create(azurite_->Account(container), std::move(o));
    EXPECT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE((*c)->CreateContainer().ok());
    return std::move(*c);
  }
  static testing::Azurite* azurite_;
  static absl::Status start_;
};
testing::Azurite* BlobClientTest::azurite_ = nullptr;
absl::Status BlobClientTest::start_;

TEST(BlobXmlTest, ParsesAListPageWithEntitiesAndMarker) {
  auto page = blob_internal::ParseListBlobs(
      "<?xml version=\"1.0\"?><EnumerationResults ServiceEndpoint=\"x\"><Blobs>"
      "<Blob><Name>a&amp;b/c &lt;1&gt;.txt</Name><Properties><Etag>0x1</Etag>"
      "<Content-Length>12</Content-Length><Content-MD5>abc==</Content-MD5></Properties></Blob>"
      "<Blob><Name>d</Name><Properties><Content-Length>0</Content-Length><Content-MD5/>"
      "</Properties></Blob></Blobs><NextMarker>m2</NextMarker></EnumerationResults>");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->blobs.size(), 2u);
  EXPECT_EQ(page->blobs[0].name, "a&b/c <1>.txt");
  EXPECT_EQ(page->blobs[0].size, 12);
  EXPECT_EQ(page->blobs[0].content_md5, "abc==");
  EXPECT_EQ(page->blobs[1].content_md5, "");
  EXPECT_EQ(page->next_marker, "m2");
  EXPECT_FALSE(blob_internal::ParseListBlobs("<html>").ok());
}

TEST(BlobXmlTest, EncodesBlobNamesKeepingSlashes) {
  EXPECT_EQ(blob_internal::EncodeBlobName("a b/c+d%.txt"), "a%20b/c%2Bd%25.txt");
}

TEST_F(BlobClientTest, PutGetAndProperties) {
  auto c = Client("basic");
  std::string data = RandomBytes(100000, 1);
  ASSERT_TRUE(c->PutBlob("dir/file one.bin", data, blob_internal::Md5Base64(data)).ok());
  auto info = c->GetProperties("dir/file one.bin");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, 100000);
  EXPECT_EQ(info->content_md5, blob_internal::Md5Base64(data));
  auto back = c->GetBlob("dir/file one.bin");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == data);
  auto missing = c->GetProperties("nope");
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
}

TEST_F(BlobClientTest, RangedGetDeliversExactlyTheRange) {
  auto c = Client("ranged");
  std::string data = RandomBytes(1 << 20, 2);
  ASSERT_TRUE(c->PutBlob("r", data).ok());
  std::string got;
  ASSERT_TRUE(c->GetRange("r", 12345, 500000, [&](const char* d, size_t n) {
                 got.append(d, n);
                 return absl::OkStatus();
               }).ok());
  EXPECT_TRUE(got == data.substr(12345, 500000));
}

TEST_F(BlobClientTest, ListFollowsEveryPage) {
  BlobClientOptions o;
  o.list_page_size = 7;
  auto c = Client("paged", o);
  for (int i = 0; i < 25; ++i) {
    ASSERT_TRUE(c->PutBlob(absl::StrFormat("p/f%02d", i), absl::StrCat("x", i)).ok());
  }
  ASSERT_TRUE(c->PutBlob("other/z", "z").ok());
  auto first = c->ListPage("p/", "", 7);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->blobs.size(), 7u);
  EXPECT_FALSE(first->next_marker.empty());
  auto all = c->List("p/");
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 25u);
  EXPECT_EQ((*all)[24].name, "p/f24");
  EXPECT_EQ((*all)[3].size, 2);
}

TEST_F(BlobClientTest, BlockUploadCommitsBlocksInOrderWithMd5) {
  auto c = Client("blocks");
  std::string data = RandomBytes(3 * 1000000 + 17, 3);
  std::vector<std::string> ids;
  for (int i = 0; i * 1000000 < static_cast<int>(data.size()); ++i) {
    ids.push_back(absl::StrFormat("block-%06d", i));
    ASSERT_TRUE(
        c->PutBlock("big", ids.back(), absl::string_view(data).substr(i * 1000000, 1000000)).ok());
  }
  ASSERT_TRUE(c->PutBlockList("big", ids, blob_internal::Md5Base64(data)).ok());
  auto info = c->GetProperties("big");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, static_cast<int64_t>(data.size()));
  EXPECT_EQ(info->content_md5, blob_internal::Md5Base64(data));
  EXPECT_TRUE(*c->GetBlob("big") == data);
}

TEST_F(BlobClientTest, WrongAccountKeyIsAClearAuthErrorWithoutTheKey) {
  auto good = Client("auth");
  BlobAccount a = azurite_->Account("auth");
  const std::string wrong = absl::Base64Escape(RandomBytes(64, 9));
  a.account_key = wrong;
  auto c = BlobClient::Create(a);
  ASSERT_TRUE(c.ok());
  absl::Status put = (*c)->PutBlob("secret.txt", "data");
  EXPECT_TRUE(absl::IsPermissionDenied(put)) << put;
  EXPECT_THAT(put.message(), HasSubstr("authentication failed"));
  EXPECT_THAT(put.message(), HasSubstr("devstoreaccount1"));
  EXPECT_THAT(put.message(), Not(HasSubstr(wrong)));
  EXPECT_THAT(put.message(), Not(HasSubstr(testing::kAzuriteKey)));
  auto listed = (*c)->List("");
  EXPECT_TRUE(absl::IsPermissionDenied(listed.status())) << listed.status();
  // Nothing was written.
  EXPECT_TRUE(absl::IsNotFound(good->GetProperties("secret.txt").status()));
}

TEST_F(BlobClientTest, SasTokenAuthenticatesAndABadOneIsRefused) {
  Client("sas");
  BlobAccount a = azurite_->Account("sas");
  a.account_key.clear();
  a.sas_token = "?" + AccountSas("rwdlac");
  auto c = BlobClient::Create(a);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->PutBlob("s.txt", "via sas").ok());
  EXPECT_EQ(*(*c)->GetBlob("s.txt"), "via sas");
  auto listed = (*c)->List("");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->size(), 1u);

  a.sas_token = AccountSas("rl");  // read + list only
  auto ro = BlobClient::Create(a);
  absl::Status put = (*ro)->PutBlob("t.txt", "x");
  EXPECT_TRUE(absl::IsPermissionDenied(put)) << put;
  EXPECT_THAT(put.message(), Not(HasSubstr("sig=")));
}

TEST_F(BlobClientTest, DroppedConnectionMidBodyIsResumedWithCorrectBytes) {
  auto c = Client("drop");
  std::string data = RandomBytes(8 << 20, 4);
  ASSERT_TRUE(c->PutBlob("d", data).ok());
  // The first two connections are reset after ~1 MiB / ~3 MiB of response.
  testing::CuttingProxy proxy(azurite_->port(), 1 << 20, 2);
  BlobAccount a = azurite_->Account("drop");
  a.endpoint = absl::StrCat("http://127.0.0.1:", proxy.port(), "/", testing::kAzuriteAccount);
  BlobClientOptions o;
  o.initial_backoff = absl::Milliseconds(10);
  auto via = BlobClient::Create(a, o);
  std::string got;
  absl::Status s =
      (*via)->GetRange("d", 0, static_cast<int64_t>(data.size()), [&](const char* d, size_t n) {
        got.append(d, n);
        return absl::OkStatus();
      });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(proxy.cuts_done(), 2);
  ASSERT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
}

TEST_F(BlobClientTest, ServerBusyIsRetriedAndGivesUpWithAClearError) {
  auto c = Client("busy");
  ASSERT_TRUE(c->PutBlob("b", "hello").ok());
  testing::CuttingProxy proxy(azurite_->port(), 0, 0, /*busy=*/3);  // 503, 429, 503
  BlobAccount a = azurite_->Account("busy");
  a.endpoint = absl::StrCat("http://127.0.0.1:", proxy.port(), "/", testing::kAzuriteAccount);
  BlobClientOptions o;
  o.initial_backoff = absl::Milliseconds(10);
  auto via = BlobClient::Create(a, o);
  auto got = (*via)->GetBlob("b");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "hello");

  testing::CuttingProxy always(azurite_->port(), 0, 0, /*busy=*/100);
  a.endpoint = absl::StrCat("http://127.0.0.1:", always.port(), "/", testing::kAzuriteAccount);
  o.max_attempts = 3;
  auto failing = BlobClient::Create(a, o);
  auto err = (*failing)->GetProperties("b");
  EXPECT_TRUE(absl::IsUnavailable(err.status())) << err.status();
  EXPECT_THAT(err.status().message(), ::testing::AnyOf(HasSubstr("503"), HasSubstr("429")));
  EXPECT_THAT(err.status().message(), HasSubstr("3 attempts"));
}

TEST_F(BlobClientTest, ConnectionRefusedIsUnavailable) {
  BlobAccount a = azurite_->Account("x");
  a.endpoint = absl::StrCat("http://127.0.0.1:", testing::FreeLoopbackPort(), "/devstoreaccount1");
  BlobClientOptions o;
  o.max_attempts = 2;
  o.initial_backoff = absl::Milliseconds(1);
  auto c = BlobClient::Create(a, o);
  auto r = (*c)->List("");
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
}

TEST(BlobClientCreateTest, RejectsBadConfiguration) {
  BlobAccount a;
  a.account_name = "acct";
  EXPECT_FALSE(BlobClient::Create(a).ok());
  a.container = "c";
  a.account_key = "not base64 !!";
  auto c = BlobClient::Create(a);
  EXPECT_TRUE(absl::IsInvalidArgument(c.status()));
  EXPECT_THAT(c.status().message(), Not(HasSubstr("not base64 !!")));
  a.account_key.clear();
  a.endpoint = "ftp://x";
  EXPECT_FALSE(BlobClient::Create(a).ok());
}

}  // namespace
}  // namespace kubetrain::storage
