#include "kubetrain/common/command_template.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kubetrain::common {
namespace {

using ::testing::HasSubstr;

TEST(CommandTemplateTest, FindsInputAndOutputReferencesInOrder) {
  auto refs = FindReferences("python train.py --data ${{inputs.data}} --out ${{ outputs.model }}");
  ASSERT_TRUE(refs.ok()) << refs.status();
  ASSERT_EQ(refs->size(), 2u);
  EXPECT_EQ((*refs)[0].kind, TemplateReference::Kind::kInput);
  EXPECT_EQ((*refs)[0].name, "data");
  EXPECT_EQ((*refs)[0].offset, 23u);
  EXPECT_EQ((*refs)[1].kind, TemplateReference::Kind::kOutput);
  EXPECT_EQ((*refs)[1].name, "model");
  EXPECT_EQ((*refs)[1].text, "${{ outputs.model }}");
}

TEST(CommandTemplateTest, PlainDollarsAreLeftAlone) {
  auto refs = FindReferences("echo $HOME ${HOME} $((1+2))");
  ASSERT_TRUE(refs.ok());
  EXPECT_TRUE(refs->empty());
}

TEST(CommandTemplateTest, RejectsMalformedReferences) {
  EXPECT_THAT(FindReferences("echo ${{inputs.x").status().message(), HasSubstr("unclosed"));
  EXPECT_THAT(FindReferences("echo ${{inputs.x ${{inputs.y}}").status().message(),
              HasSubstr("unclosed"));
  EXPECT_THAT(FindReferences("echo ${{params.x}}").status().message(),
              HasSubstr("not a reference kubetrain knows"));
  EXPECT_THAT(FindReferences("echo ${{inputs.}}").status().message(), HasSubstr("no valid name"));
  EXPECT_THAT(FindReferences("echo ${{inputs.a-b}}").status().message(),
              HasSubstr("no valid name"));
}

TEST(CommandTemplateTest, SubstitutesValues) {
  auto out = Substitute("cp ${{inputs.a}} ${{outputs.b}}/x ${{inputs.a}}", {{"a", "/in/a"}},
                        {{"b", "/out/b"}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "cp /in/a /out/b/x /in/a");
}

TEST(CommandTemplateTest, MissingValueIsNotFound) {
  auto out = Substitute("cp ${{inputs.a}}", {}, {});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(out.status().message(), HasSubstr("${{inputs.a}}"));
}

}  // namespace
}  // namespace kubetrain::common
