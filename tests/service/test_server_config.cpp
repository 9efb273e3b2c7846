// The daemon's config checks and the CURVE key files: every misconfiguration
// is refused at start with its reason, not discovered by unreachable clients.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zmq.h>

#include <filesystem>
#include <fstream>

#include "core/files.h"
#include "service/curve_keys.h"
#include "service/server_config.h"
#include "test_support.h"

namespace feu::service {
namespace {
namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::vector<uint8_t> bytes = read_file(path);
  return std::string(bytes.begin(), bytes.end());
}

// The config_error message of a `daemon:` section, "" when it is accepted.
std::string config_error(const test::TempDir& dir, const std::string& daemon_section) {
  std::string path = dir.file("c.yaml");
  std::ofstream(path) << "daemon:\n  journal_dir: state\n" << daemon_section;
  try {
    ServerConfig::from_config(ConfigMap::load_file(path).child("daemon"));
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConfigError) << e.what();
    return e.what();
  }
  return "";
}

std::string curve_section(const std::string& secret, const std::string& allowed) {
  return "  curve: {secret_key_file: " + secret + ", allowed_clients_file: " + allowed + "}\n";
}

TEST(ServerConfig, ANegativeCountIsNamedAsSuchNotAsAWrongType) {
  test::TempDir dir;
  std::string message = config_error(dir, "  max_queue: -1\n");
  EXPECT_NE(message.find("daemon.max_queue' must be a positive integer, got -1"), std::string::npos) << message;
  EXPECT_EQ(message.find("wrong type"), std::string::npos) << message;
  message = config_error(dir, "  limits: {max_frames: -3}\n");
  EXPECT_NE(message.find("daemon.limits.max_frames' must be a positive integer, got -3"), std::string::npos)
      << message;
  EXPECT_NE(config_error(dir, "  max_batch: 0\n").find("max_batch' must be a positive integer, got 0"),
            std::string::npos);
}

TEST(ServerConfig, LocalhostBindIsRefusedNamingTheAddressToUse) {
  test::TempDir dir;
  // ZeroMQ would fail to bind it with "No such device".
  std::string message = config_error(dir, "  bind: \"tcp://localhost:*\"\n");
  EXPECT_NE(message.find("'tcp://127.0.0.1:*'"), std::string::npos) << message;
  ServerConfig config;
  config.bind = "tcp://LocalHost:5555";
  EXPECT_THROW(config.validate(), Error);
  config.bind = "tcp://127.0.0.1:5555";
  EXPECT_NO_THROW(config.validate());
}

TEST(ServerConfig, LimitsMayBeLoweredButNotRaisedAboveTheEngines) {
  test::TempDir dir;
  EXPECT_EQ(config_error(dir, "  limits: {max_alphas: 4, max_text_bytes: 200}\n"), "");
  EXPECT_NE(config_error(dir, "  limits: {max_alphas: 32}\n").find("max_alphas = 32 is above the engine's 16"),
            std::string::npos);
  EXPECT_NE(config_error(dir, "  limits: {max_text_bytes: 1024}\n").find("max_text_bytes = 1024"),
            std::string::npos);
}

class CurveKeys : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!zmq_has("curve")) GTEST_SKIP() << "libzmq without CURVE";
  }
  test::TempDir dir_;
};

TEST_F(CurveKeys, KeygenMarksBothFilesAndCreatesTheSecretPrivate) {
  std::string public_key = write_curve_keypair(dir_.file("server"), false);
  std::string secret_text = slurp(dir_.file("server.key")), public_text = slurp(dir_.file("server.pub"));
  EXPECT_EQ(secret_text.rfind(kSecretKeyMarker, 0), 0u) << secret_text;
  EXPECT_EQ(public_text.rfind(kPublicKeyMarker, 0), 0u) << public_text;
  struct stat info;
  ASSERT_EQ(stat(dir_.file("server.key").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  std::string secret = read_secret_key_file(dir_.file("server.key"), "key");
  EXPECT_EQ(curve_public_key(secret), public_key);
  EXPECT_EQ(read_public_key_file(dir_.file("server.pub"), "key"), public_key);
  EXPECT_EQ(read_key_file(dir_.file("server.pub")), public_key);
}

TEST_F(CurveKeys, KeygenRefusesToReplaceAKeyUnlessForced) {
  std::string first = write_curve_keypair(dir_.file("server"), false);
  std::string secret_text = slurp(dir_.file("server.key"));
  try {
    write_curve_keypair(dir_.file("server"), false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  }
  EXPECT_EQ(slurp(dir_.file("server.key")), secret_text);
  fs::remove(dir_.file("server.key"));  // a lone .pub is a key too
  EXPECT_THROW(write_curve_keypair(dir_.file("server"), false), Error);
  EXPECT_NE(write_curve_keypair(dir_.file("server"), true), first);
}

TEST_F(CurveKeys, APublicKeyGivenAsTheSecretIsRefused) {
  write_curve_keypair(dir_.file("server"), false);
  write_curve_keypair(dir_.file("client"), false);
  fs::copy_file(dir_.file("client.pub"), dir_.file("allowed.txt"));
  EXPECT_EQ(config_error(dir_, curve_section("server.key", "allowed.txt")), "");

  // The file keygen marked public.
  std::string message = config_error(dir_, curve_section("server.pub", "allowed.txt"));
  EXPECT_NE(message.find("daemon.curve.secret_key_file " + dir_.file("server.pub") + " is marked as a public key"),
            std::string::npos)
      << message;
  // The public key copied into a .key file without the mark: its .pub gives it away.
  std::ofstream(dir_.file("copied.key")) << read_key_file(dir_.file("server.pub")) << "\n";
  fs::copy_file(dir_.file("server.pub"), dir_.file("copied.pub"));
  message = config_error(dir_, curve_section("copied.key", "allowed.txt"));
  EXPECT_NE(message.find("holds the public key of"), std::string::npos) << message;
  // A secret whose .pub is another keypair's.
  fs::copy_file(dir_.file("client.key"), dir_.file("mixed.key"));
  fs::copy_file(dir_.file("server.pub"), dir_.file("mixed.pub"));
  message = config_error(dir_, curve_section("mixed.key", "allowed.txt"));
  EXPECT_NE(message.find("is not the secret key of"), std::string::npos) << message;
}

TEST_F(CurveKeys, AnEmptyOrWrongAllowListIsRefused) {
  write_curve_keypair(dir_.file("server"), false);
  write_curve_keypair(dir_.file("client"), false);
  std::ofstream(dir_.file("empty.txt")) << "# nobody yet\n\n";
  std::string message = config_error(dir_, curve_section("server.key", "empty.txt"));
  EXPECT_NE(message.find("lists no client key"), std::string::npos) << message;
  message = config_error(dir_, curve_section("server.key", "client.key"));
  EXPECT_NE(message.find("holds a secret key"), std::string::npos) << message;
  message = config_error(dir_, curve_section("server.key", "absent.txt"));
  EXPECT_NE(message.find("allow-list not found"), std::string::npos) << message;
  message = config_error(dir_, curve_section("absent.key", "client.pub"));
  EXPECT_NE(message.find("absent.key"), std::string::npos) << message;
}

TEST_F(CurveKeys, ASecretKeyOthersCanReadIsWarnedAbout) {
  write_curve_keypair(dir_.file("server"), false);
  write_curve_keypair(dir_.file("client"), false);
  ServerConfig config;
  config.curve.enabled = true;
  config.curve.secret_key_file = dir_.file("server.key");
  config.curve.allowed_clients_file = dir_.file("client.pub");
  config.validate();
  EXPECT_TRUE(config.warnings().empty());
  fs::permissions(dir_.file("server.key"), fs::perms::group_read | fs::perms::others_read, fs::perm_options::add);
  EXPECT_NO_THROW(config.validate());
  ASSERT_EQ(config.warnings().size(), 1u);
  EXPECT_NE(config.warnings()[0].find("(mode 0644): run chmod 600 " + dir_.file("server.key")), std::string::npos)
      << config.warnings()[0];
}

}  // namespace
}  // namespace feu::service
