#include <gtest/gtest.h>

#include <fstream>

#include "core/config.h"
#include "test_support.h"

namespace feu {
namespace {

TEST(Config, ReadsTypedValuesAndResolvesPaths) {
  test::TempDir dir;
  std::ofstream(dir.file("c.yaml")) << "edit:\n  alpha: 4.1\n  beta: auto\n  k_pos: 100\n"
                                       "models:\n  generator: models/g.h5\n";
  ConfigMap root = ConfigMap::load_file(dir.file("c.yaml"));
  ConfigMap edit = root.child("edit");
  EXPECT_DOUBLE_EQ(edit.get<double>("alpha", 0), 4.1);
  EXPECT_EQ(edit.require<std::string>("beta"), "auto");
  EXPECT_EQ(edit.get<int>("k_pos", 0), 100);
  EXPECT_EQ(edit.get<int>("k_neg", 7), 7);
  EXPECT_EQ(root.child("models").require_path("generator"), dir.path() + "/models/g.h5");
  ConfigMap absent = root.child("daemon");  // an absent section reads as empty
  EXPECT_FALSE(absent.has("bind"));
  EXPECT_EQ(absent.get<std::string>("bind", "tcp://127.0.0.1:5555"), "tcp://127.0.0.1:5555");
  absent.finish();
  edit.finish();
  root.finish();
}

TEST(Config, UnknownKeyIsAnErrorNamingKeyAndFile) {
  ConfigMap root = ConfigMap::parse("edit:\n  alpah: 3\n", "test.yaml");
  ConfigMap edit = root.child("edit");
  edit.get<double>("alpha", 4.1);
  try {
    edit.finish();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConfigError);
    std::string msg = e.what();
    EXPECT_NE(msg.find("edit.alpah"), std::string::npos) << msg;
    EXPECT_NE(msg.find("test.yaml"), std::string::npos) << msg;
  }
}

TEST(Config, WrongTypeAndMissingKey) {
  ConfigMap root = ConfigMap::parse("k_pos: many\n", "t.yaml");
  try {
    root.require<int>("k_pos");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("k_pos"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("integer"), std::string::npos);
  }
  EXPECT_THROW(root.require<int>("absent"), Error);
  EXPECT_THROW(ConfigMap::parse("[1, 2]", "list.yaml"), Error);
  EXPECT_THROW(ConfigMap::parse("a: [", "bad.yaml"), Error);
  EXPECT_THROW(ConfigMap::load_file("/nonexistent/feu.yaml"), Error);
}

TEST(Config, NegativeValueForAnUnsignedKeyIsARangeErrorNotAWrongType) {
  ConfigMap root = ConfigMap::parse("max_queue: -1\n", "t.yaml");
  try {
    root.require<size_t>("max_queue");
    FAIL();
  } catch (const Error& e) {
    std::string message = e.what();
    EXPECT_EQ(e.code(), ErrorCode::kConfigError);
    EXPECT_NE(message.find("max_queue"), std::string::npos) << message;
    EXPECT_NE(message.find("non-negative integer, got -1"), std::string::npos) << message;
    EXPECT_EQ(message.find("wrong type"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace feu
