// The restricted PyTorch file reader: the parity checkpoints, hand-built archives of every
// construct it accepts, and hostile files that must give typed errors without running anything.
#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>

#include "core/error.h"
#include "core/files.h"
#include "tensor/torch_file.h"
#include "test_support.h"

namespace feu::torch_file {
namespace {

using Kind = Value::Kind;

void expect_error(const std::function<void()>& fn, ErrorCode code, const std::string& path,
                  const std::string& needle) {
  test::expect_error(fn, code, {needle, path});
}

// Protocol-2 pickles written opcode by opcode, the way torch.save and torch.jit.save write them.
class Pickle {
 public:
  Pickle() : bytes_("\x80\x02") {}
  Pickle& op(const std::string& opcodes) { return raw(opcodes); }
  Pickle& raw(const std::string& bytes) {
    bytes_ += bytes;
    return *this;
  }
  Pickle& global(const std::string& module, const std::string& name) {
    return raw("c" + module + "\n" + name + "\n");
  }
  Pickle& str(const std::string& s) {
    bytes_ += 'X';
    little_endian(s.size(), 4);
    return raw(s);
  }
  Pickle& integer(int64_t v) {
    if (v >= 0 && v < 256) return raw(std::string("K") + static_cast<char>(v));
    if (v < INT32_MIN || v > INT32_MAX) return long1(v, 8);
    bytes_ += 'J';
    little_endian(static_cast<uint64_t>(v), 4);
    return *this;
  }
  // LONG1 with the n low bytes of v's two's complement.
  Pickle& long1(int64_t v, int n) {
    bytes_ += '\x8a';
    bytes_ += static_cast<char>(n);
    little_endian(static_cast<uint64_t>(v), n);
    return *this;
  }
  Pickle& binfloat(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    bytes_ += 'G';
    for (int i = 7; i >= 0; --i) bytes_ += static_cast<char>((bits >> (8 * i)) & 0xff);
    return *this;
  }
  Pickle& int_tuple(const std::vector<int64_t>& values) {
    op("(");
    for (int64_t v : values) integer(v);
    return op("t");
  }
  // torch._utils._rebuild_tensor_v2 of the storage entry data/<key>.
  Pickle& tensor(const std::string& storage_type, const std::string& key, int64_t numel,
                 int64_t offset, const std::vector<int64_t>& size,
                 const std::vector<int64_t>& stride, const std::string& location = "cpu") {
    global("torch._utils", "_rebuild_tensor_v2")
        .op("((")
        .str("storage")
        .global("torch", storage_type);
    str(key).str(location).integer(numel).op("t").op("Q").integer(offset);
    int_tuple(size).int_tuple(stride).op("\x89").global("collections", "OrderedDict").op(")R");
    return op("tR");
  }
  std::string done() const { return bytes_ + "."; }
  const std::string& bytes() const { return bytes_; }

 private:
  void little_endian(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_ += static_cast<char>((v >> (8 * i)) & 0xff);
  }
  std::string bytes_;
};

std::string floats(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

// One tensor entry ("x/data/0", 4 floats) around a pickle, for the hostile cases.
std::string write_archive(const test::TempDir& dir, const std::string& pickle,
                          const std::string& name = "hostile.pt") {
  const std::string path = dir.file(name);
  test::write_zip(path, {{"x/data.pkl", pickle}, {"x/data/0", floats({1, 2, 3, 4})}});
  return path;
}

TEST(TorchFile, ReadsTheClipArchiveAsRecordsOfAttributes) {
  FEU_SHARED_FILE_OR_SKIP(archive, "parity/clip_small.pt");
  ValuePtr root = read(archive);
  ASSERT_EQ(root->kind(), Kind::kRecord);
  EXPECT_EQ(root->class_name(), "__torch__.model.CLIP");
  ASSERT_NE(root->find("visual"), nullptr);
  EXPECT_EQ(root->find("visual")->class_name(), "__torch__.model.VisionTransformer");
  EXPECT_FALSE(root->find("training")->as_bool());

  std::map<std::string, at::Tensor> tensors = named_tensors(*root, archive);
  EXPECT_EQ(tensors.size(), 62u);  // as torch::jit::load's named_parameters + named_buffers
  auto expect_tensor = [&](const std::string& name, at::ScalarType dtype,
                           std::vector<int64_t> shape) {
    ASSERT_TRUE(tensors.count(name)) << name;
    EXPECT_EQ(tensors[name].scalar_type(), dtype) << name;
    EXPECT_EQ(tensors[name].sizes().vec(), shape) << name;
    EXPECT_TRUE(tensors[name].device().is_cpu()) << name;
  };
  expect_tensor("visual.conv1.weight", at::kHalf, {128, 3, 8, 8});
  expect_tensor("visual.class_embedding", at::kFloat, {128});
  expect_tensor("visual.transformer.resblocks.1.attn.in_proj_weight", at::kHalf, {384, 128});
  expect_tensor("transformer.resblocks.0.mlp.c_fc.bias", at::kHalf, {512});
  expect_tensor("token_embedding.weight", at::kFloat, {49408, 128});
  expect_tensor("text_projection", at::kHalf, {128, 32});
  expect_tensor("logit_scale", at::kFloat, {});
  EXPECT_NEAR(tensors["logit_scale"].item<double>(), std::log(1 / 0.07), 1e-2);
}

TEST(TorchFile, ReadsTheE4eCheckpointSavedFromAGpu) {
  FEU_SHARED_FILE_OR_SKIP(checkpoint, "parity/e4e_small.pt");
  ValuePtr root = read(checkpoint);
  ASSERT_EQ(root->kind(), Kind::kDict);
  const Value* state_dict = root->find("state_dict");
  ASSERT_NE(state_dict, nullptr);
  ASSERT_EQ(state_dict->kind(), Kind::kDict);
  EXPECT_EQ(state_dict->entries().size(), 509u);
  for (const auto& [key, value] : state_dict->entries()) {
    EXPECT_EQ(key->as_string().rfind("encoder.", 0), 0u) << key->as_string();
    EXPECT_EQ(value->kind(), Kind::kTensor) << key->as_string();
    EXPECT_TRUE(value->as_tensor().device().is_cpu());  // saved from cuda:0
  }
  const at::Tensor& latent_avg = root->find("latent_avg")->as_tensor();
  EXPECT_EQ(latent_avg.sizes().vec(), (std::vector<int64_t>{10, 64}));
  EXPECT_EQ(latent_avg.scalar_type(), at::kFloat);
  // The sum of data/509's 640 floats, computed from the zip entry's raw bytes.
  EXPECT_NEAR(latent_avg.to(at::kDouble).sum().item<double>(), 51.69379717193078, 1e-9);

  const Value* opts = root->find("opts");
  ASSERT_NE(opts, nullptr);
  EXPECT_EQ(opts->find("encoder_type")->as_string(), "Encoder4Editing");
  EXPECT_EQ(opts->find("stylegan_size")->as_int(), 64);
  EXPECT_TRUE(opts->find("start_from_latent_avg")->as_bool());
  EXPECT_EQ(opts->find("checkpoint_path")->kind(), Kind::kNone);
  EXPECT_EQ(opts->find("device")->as_string(), "cuda:0");

  std::map<std::string, at::Tensor> tensors = named_tensors(*root, checkpoint);
  EXPECT_EQ(tensors.size(), 510u);
  EXPECT_TRUE(tensors.count("state_dict.encoder.input_layer.0.weight"));
}

TEST(TorchFile, ReadsATorchScriptModuleWithViewsDictsAndTypedLists) {
  test::TempDir dir;
  Pickle p;
  p.global("__torch__.m", "M").op(")\x81").op("}(");
  p.str("a").tensor("FloatStorage", "0", 6, 1, {2, 2}, {1, 2});
  p.str("b").tensor("FloatStorage", "0", 6, 0, {6}, {1});
  p.str("training").op("\x88");
  p.str("c").op("}(").str("k").tensor("HalfStorage", "1", 2, 0, {2}, {1}, "cuda:1").op("u");
  p.str("n").global("torch.jit._pickle", "restore_type_tag").op("(](").integer(1).integer(2);
  p.op("e").str("List[int]").op("tR");
  p.op("ub");
  const std::string half_bytes("\x00\x3c\x00\xc0", 4);  // 1.0, -2.0 in fp16
  test::write_zip(dir.file("m.pt"), {{"archive/data.pkl", p.done()},
                                     {"archive/data/0", floats({0, 1, 2, 3, 4, 5})},
                                     {"archive/data/1", half_bytes},
                                     {"archive/byteorder", "little"},
                                     {"archive/version", "4\n"}});
  ValuePtr root = read(dir.file("m.pt"));
  ASSERT_EQ(root->kind(), Kind::kRecord);
  EXPECT_EQ(root->class_name(), "__torch__.m.M");
  EXPECT_TRUE(root->find("training")->as_bool());
  ASSERT_EQ(root->find("n")->items().size(), 2u);
  EXPECT_EQ(root->find("n")->items()[1]->as_int(), 2);

  std::map<std::string, at::Tensor> tensors = named_tensors(*root, "m.pt");
  ASSERT_EQ(tensors.size(), 3u);
  const at::Tensor& a = tensors.at("a");
  const at::Tensor& b = tensors.at("b");
  EXPECT_TRUE(at::equal(a, at::tensor({1.f, 3.f, 2.f, 4.f}).reshape({2, 2})));
  EXPECT_TRUE(at::equal(b, at::arange(6, at::kFloat)));
  EXPECT_EQ(a.storage().data(), b.storage().data());  // one storage, as saved
  EXPECT_TRUE(at::equal(tensors.at("c.k"), at::tensor({1.f, -2.f}).to(at::kHalf)));
}

TEST(TorchFile, ReadsATorchSaveDictUnderAnyTopLevelDirectory) {
  test::TempDir dir;
  Pickle p;
  p.op("}(").str("state_dict").global("collections", "OrderedDict").op(")R(");
  p.str("w").tensor("LongStorage", "7", 2, 0, {2}, {1}, "cuda:0").op("u");
  p.op("}(")
      .str("_metadata")
      .op("}u")
      .op("b");  // a state dict's attributes, as torch.save writes them
  p.str("lr").binfloat(0.5).str("big").long1(-300000000000, 5).str("none").op("N");
  p.str("dtype")
      .global("torch", "float16")
      .str("list")
      .op("](")
      .tensor("FloatStorage", "0", 1, 0, {}, {});
  p.op("eu");
  const std::string longs("\x05\x00\x00\x00\x00\x00\x00\x00\xfb\xff\xff\xff\xff\xff\xff\xff", 16);
  test::write_zip(dir.file("ckpt.pt"), {{"whatever_name/data.pkl", p.done()},
                                        {"whatever_name/data/7", longs},
                                        {"whatever_name/data/0", floats({2.5})},
                                        {"whatever_name/version", "3\n"}});
  ValuePtr root = read(dir.file("ckpt.pt"));
  EXPECT_EQ(root->find("lr")->as_double(), 0.5);
  EXPECT_EQ(root->find("big")->as_int(), -300000000000);
  EXPECT_EQ(root->find("none")->kind(), Kind::kNone);
  EXPECT_EQ(root->find("dtype")->as_string(), "torch.float16");
  std::map<std::string, at::Tensor> tensors = named_tensors(*root, "ckpt.pt");
  ASSERT_EQ(tensors.size(), 2u);
  EXPECT_TRUE(at::equal(tensors.at("state_dict.w"), at::tensor({int64_t{5}, int64_t{-5}})));
  EXPECT_EQ(tensors.at("list.0").dim(), 0);
  EXPECT_EQ(tensors.at("list.0").item<float>(), 2.5f);
}

TEST(TorchFile, ATorchScriptClassWithSetstateIsARecordAndNothingRuns) {
  test::TempDir dir;
  const std::string marker = dir.file("ran");
  // What torch.jit.load would run: the class's __setstate__ with the pickled state.
  const std::string code =
      "class Evil(Module):\n"
      "  def __setstate__(self: __torch__.evil.Evil, state: Tuple[str]) -> None:\n"
      "    print(\"FEU-SETSTATE-RAN\")\n"
      "    return None\n";
  Pickle p;
  p.global("__torch__.evil", "Evil").op(")\x81").str("touch " + marker).op("\x85").op("b");
  test::write_zip(dir.file("evil.pt"), {{"archive/data.pkl", p.done()},
                                        {"archive/code/__torch__/evil.py", code},
                                        {"archive/version", "3\n"}});
  testing::internal::CaptureStdout();
  ValuePtr root = read(dir.file("evil.pt"));
  EXPECT_EQ(testing::internal::GetCapturedStdout().find("FEU-SETSTATE-RAN"), std::string::npos);
  ASSERT_EQ(root->kind(), Kind::kRecord);
  EXPECT_EQ(root->class_name(), "__torch__.evil.Evil");
  ASSERT_NE(root->state(), nullptr);
  ASSERT_EQ(root->state()->kind(), Kind::kTuple);
  EXPECT_EQ(root->state()->items()[0]->as_string(), "touch " + marker);
  EXPECT_TRUE(named_tensors(*root, "evil.pt").empty());
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST(TorchFile, GlobalsOutsideTheAllowListAreRefused) {
  test::TempDir dir;
  const std::string marker = dir.file("pwned");
  std::string path =
      write_archive(dir, Pickle().global("os", "system").str("touch " + marker).op("\x85R").done());
  expect_error([&] { read(path); }, ErrorCode::kUnsupported, path, "os.system");
  EXPECT_FALSE(std::filesystem::exists(marker));

  path = write_archive(dir, Pickle().global("builtins", "eval").str("1").op("\x85R").done(),
                       "eval.pt");
  expect_error([&] { read(path); }, ErrorCode::kUnsupported, path, "builtins.eval");

  // Protocol 4's STACK_GLOBAL goes through the same allow-list.
  std::string stack_global = Pickle().raw("\x8c\x0asubprocess\x8c\x05Popen\x93").done();
  path = write_archive(dir, stack_global, "popen.pt");
  expect_error([&] { read(path); }, ErrorCode::kUnsupported, path, "subprocess.Popen");

  // An allowed name is a name, never a callable or a class to build.
  path = write_archive(dir, Pickle().global("torch", "FloatStorage").op(")R").done(), "call.pt");
  expect_error([&] { read(path); }, ErrorCode::kUnsupported, path, "torch.FloatStorage");
  path = write_archive(dir, Pickle().global("collections", "OrderedDict").op(")\x81").done(),
                       "newobj.pt");
  expect_error([&] { read(path); }, ErrorCode::kUnsupported, path,
               "NEWOBJ of collections.OrderedDict");
}

TEST(TorchFile, MalformedPicklesAreTypedErrors) {
  test::TempDir dir;
  std::string path = write_archive(dir, Pickle().raw("\xff").done(), "unknown.pt");
  expect_error([&] { read(path); }, ErrorCode::kCorruptFile, path,
               "byte 0xff is not a pickle opcode");

  path = write_archive(dir, Pickle().raw("i__builtin__\nobject\n").done(), "inst.pt");
  expect_error([&] { read(path); }, ErrorCode::kUnsupported, path, "INST");

  const std::string whole = Pickle().op("}(").str("key").integer(1).op("u").done();
  path = write_archive(dir, whole.substr(0, whole.size() - 1), "no_stop.pt");
  expect_error([&] { read(path); }, ErrorCode::kCorruptFile, path, "ends before its STOP");
  path = write_archive(dir, whole.substr(0, 8), "cut.pt");
  expect_error([&] { read(path); }, ErrorCode::kCorruptFile, path, "ends before its STOP");

  path = write_archive(dir, Pickle().raw("h\x07").done(), "memo.pt");
  expect_error([&] { read(path); }, ErrorCode::kCorruptFile, path, "memo entry 7");

  path = write_archive(dir, Pickle().raw("a").done(), "underflow.pt");
  expect_error([&] { read(path); }, ErrorCode::kCorruptFile, path, "APPEND finds no value");
}

TEST(TorchFile, SelfContainingAndDeepObjectsAreRefusedWithoutRecursing) {
  test::TempDir dir;
  const std::string self_appending_list("]q\x00h\x00\x61", 6);  // l = []; l.append(l)
  std::string path = write_archive(dir, Pickle().raw(self_appending_list).done(), "cycle.pt");
  expect_error([&] { read(path); }, ErrorCode::kCorruptFile, path, "contains itself");

  // 200,000 nested lists: refused, and freed without a recursion per level.
  const std::string deep_list = std::string(200000, ']') + std::string(199999, 'a');
  path = write_archive(dir, Pickle().raw(deep_list).done(), "deep.pt");
  expect_error([&] { read(path); }, ErrorCode::kCorruptFile, path, "deeper than 100");

  // Both left behind under another result: it reads, and they are freed the same way.
  path = write_archive(dir, Pickle().raw(deep_list + self_appending_list + "N").done(), "left.pt");
  EXPECT_EQ(read(path)->kind(), Kind::kNone);
}

TEST(TorchFile, StoragesAndViewsAreCheckedAgainstTheZip) {
  test::TempDir dir;
  // data/0 holds 4 floats (16 bytes).
  std::string path =
      write_archive(dir, Pickle().tensor("FloatStorage", "0", 100, 0, {100}, {1}).done(), "big.pt");
  expect_error([&] { read(path); }, ErrorCode::kCorruptFile, path,
               "declares 100 Float elements (400 bytes) but its entry holds 16 bytes");

  path = write_archive(dir, Pickle().tensor("FloatStorage", "0", 4, 0, {3}, {2}).done(), "view.pt");
  expect_error([&] { read(path); }, ErrorCode::kCorruptFile, path,
               "reaches past its storage of 4 elements");
  path =
      write_archive(dir, Pickle().tensor("FloatStorage", "0", 4, 4, {1}, {1}).done(), "offset.pt");
  expect_error([&] { read(path); }, ErrorCode::kCorruptFile, path, "reaches past its storage");
  path = write_archive(
      dir, Pickle().tensor("FloatStorage", "0", 4, 0, {2, int64_t{1} << 62}, {1, 1 << 20}).done(),
      "overflow.pt");
  expect_error([&] { read(path); }, ErrorCode::kCorruptFile, path, "reaches past its storage");

  path =
      write_archive(dir, Pickle().tensor("FloatStorage", "9", 4, 0, {4}, {1}).done(), "missing.pt");
  expect_error([&] { read(path); }, ErrorCode::kCorruptFile, path, "x/data/9, which the zip lacks");
  path = write_archive(dir, Pickle().tensor("FloatStorage", "../0", 4, 0, {4}, {1}).done(),
                       "escape.pt");
  expect_error([&] { read(path); }, ErrorCode::kCorruptFile, path,
               "storage key is not a plain name");
}

TEST(TorchFile, FilesThatAreNotPyTorchZipsAreTypedErrors) {
  test::TempDir dir;
  expect_error([&] { read(dir.file("absent.pt")); }, ErrorCode::kNotFound, "absent.pt",
               "not found");

  write_file_atomic(dir.file("text.pt"), std::string("definitely not a checkpoint"));
  expect_error([&] { read(dir.file("text.pt")); }, ErrorCode::kCorruptFile, "text.pt",
               "not a readable zip");

  write_file_atomic(dir.file("legacy.pt"),
                    std::string("\x80\x02\x8a\x0a", 4) + "the rest of an old pickle");
  expect_error([&] { read(dir.file("legacy.pt")); }, ErrorCode::kUnsupported, "legacy.pt",
               "before PyTorch 1.6");

  test::write_zip(dir.file("no_pickle.pt"),
                  {{"archive/version", "4\n"}, {"archive/data/0", "xxxx"}});
  expect_error([&] { read(dir.file("no_pickle.pt")); }, ErrorCode::kCorruptFile, "no_pickle.pt",
               "0 top-level <dir>/data.pkl entries");

  test::write_zip(dir.file("big_endian.pt"),
                  {{"x/data.pkl", Pickle().op("N").done()}, {"x/byteorder", "big"}});
  expect_error([&] { read(dir.file("big_endian.pt")); }, ErrorCode::kUnsupported, "big_endian.pt",
               "'big' byte order");
}

TEST(TorchFile, TruncatedOrDamagedArchivesAreCorruptFileErrors) {
  FEU_SHARED_FILE_OR_SKIP(archive, "parity/clip_small.pt");
  test::TempDir dir;
  const std::vector<uint8_t> raw = read_file(archive);
  std::string bytes(raw.begin(), raw.end());
  write_file_atomic(dir.file("cut.pt"), bytes.substr(0, bytes.size() / 2));
  expect_error([&] { read(dir.file("cut.pt")); }, ErrorCode::kCorruptFile, "cut.pt",
               "not a readable zip");

  // Flip one byte of the first entry's data (after its local header): the CRC catches it.
  auto u16 = [&](size_t at) {
    return static_cast<size_t>(static_cast<uint8_t>(bytes[at])) |
           static_cast<size_t>(static_cast<uint8_t>(bytes[at + 1])) << 8;
  };
  ASSERT_EQ(bytes.compare(0, 4, "PK\x03\x04"), 0);
  const size_t data_start = 30 + u16(26) + u16(28);
  bytes[data_start + 100] ^= 0x40;
  write_file_atomic(dir.file("flipped.pt"), bytes);
  expect_error([&] { read(dir.file("flipped.pt")); }, ErrorCode::kCorruptFile, "flipped.pt",
               "is damaged");
}

}  // namespace
}  // namespace feu::torch_file
