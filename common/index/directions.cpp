#include "index/directions.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/h5.h"

namespace feu::index {

namespace {

int log2_exact(int value, const std::string& what) {
  int bits = 0;
  while ((1 << bits) < value) ++bits;
  check(value >= 4 && (1 << bits) == value, ErrorCode::kInvalidArgument,
        what + " must be a power of two >= 4, got " + std::to_string(value));
  return bits;
}

void write_layer_table(h5::File& file, const std::vector<LayerSpec>& layers, const std::vector<bool>* covered) {
  const int64_t n = static_cast<int64_t>(layers.size());
  std::vector<std::string> names;
  std::vector<int64_t> offsets, channels, w_index, resolution;
  std::vector<uint8_t> is_conv, cov;
  for (int64_t i = 0; i < n; ++i) {
    names.push_back(layers[i].name);
    offsets.push_back(layers[i].offset);
    channels.push_back(layers[i].channels);
    w_index.push_back(layers[i].w_index);
    resolution.push_back(layers[i].resolution);
    is_conv.push_back(layers[i].is_conv ? 1 : 0);
    cov.push_back(covered && (*covered)[i] ? 1 : 0);
  }
  file.write_strings("layers/name", names);
  file.write_int64("layers/offset", offsets.data(), {n});
  file.write_int64("layers/channels", channels.data(), {n});
  file.write_int64("layers/w_index", w_index.data(), {n});
  file.write_int64("layers/resolution", resolution.data(), {n});
  file.write_uint8("layers/is_conv", is_conv.data(), {n});
  if (covered) file.write_uint8("layers/covered", cov.data(), {n});
}

std::vector<LayerSpec> read_layer_table(const h5::File& file, std::vector<bool>* covered) {
  std::vector<std::string> names = file.read_strings("layers/name");
  std::vector<int64_t> offsets = file.read_int64("layers/offset");
  std::vector<int64_t> channels = file.read_int64("layers/channels");
  std::vector<int64_t> w_index = file.read_int64("layers/w_index");
  std::vector<int64_t> resolution = file.read_int64("layers/resolution");
  std::vector<uint8_t> is_conv = file.read_uint8("layers/is_conv");
  const size_t n = names.size();
  check(offsets.size() == n && channels.size() == n && w_index.size() == n && resolution.size() == n &&
            is_conv.size() == n,
        ErrorCode::kCorruptFile, file.path() + ": the layers/ table columns have different lengths");
  std::vector<LayerSpec> layers(n);
  for (size_t i = 0; i < n; ++i)
    layers[i] = LayerSpec{names[i], offsets[i], channels[i], is_conv[i] != 0, int(w_index[i]), int(resolution[i])};
  if (covered) {
    std::vector<uint8_t> cov = file.read_uint8("layers/covered");
    check(cov.size() == n, ErrorCode::kCorruptFile, file.path() + ": layers/covered has the wrong length");
    covered->assign(cov.begin(), cov.end());
  }
  return layers;
}

std::string attr_or(const h5::File& file, const char* name) {
  return file.has_attr("/", name) ? file.attr_string("/", name) : std::string();
}

}  // namespace

std::vector<LayerSpec> stylegan2_layout(int resolution, int64_t channel_base, int64_t channel_max) {
  const int log2_res = log2_exact(resolution, "generator resolution");
  auto channels_at = [&](int r) { return std::min<int64_t>(channel_base / r, channel_max); };
  std::vector<LayerSpec> layers;
  int64_t offset = 0;
  auto add = [&](const std::string& name, int64_t channels, bool conv, int w_index, int res) {
    layers.push_back(LayerSpec{name, offset, channels, conv, w_index, res});
    offset += channels;
  };
  add("b4.conv1", channels_at(4), true, 0, 4);
  add("b4.torgb", channels_at(4), false, 1, 4);
  for (int j = 3; j <= log2_res; ++j) {
    const int r = 1 << j;
    const std::string block = "b" + std::to_string(r);
    // conv0 upsamples from r/2, so its style width is the previous block's channels.
    add(block + ".conv0", channels_at(r / 2), true, 2 * j - 5, r);
    add(block + ".conv1", channels_at(r), true, 2 * j - 4, r);
    add(block + ".torgb", channels_at(r), false, 2 * j - 3, r);
  }
  return layers;
}

std::vector<bool> coverage_mask(const std::vector<LayerSpec>& layers, const std::string& coverage) {
  std::vector<bool> covered(layers.size(), false);
  int max_res = 0;
  if (coverage == "all-conv") {
    max_res = 1 << 30;
  } else {
    try {
      size_t used = 0;
      max_res = std::stoi(coverage, &used);
      if (used != coverage.size()) max_res = 0;
    } catch (const std::exception&) {
      max_res = 0;
    }
    check(max_res >= 4, ErrorCode::kInvalidArgument,
          "unknown coverage '" + coverage + "' (expected all-conv or a resolution such as 128)");
  }
  for (size_t i = 0; i < layers.size(); ++i) covered[i] = layers[i].is_conv && layers[i].resolution <= max_res;
  return covered;
}

// ---------------------------------------------------------------------------- StyleStats

StyleStats StyleStats::load(const std::string& h5_path) {
  h5::File file = h5::File::open_read(h5_path);
  StyleStats stats;
  stats.layers = read_layer_table(file, nullptr);
  stats.s_mean = file.read_float("s_mean");
  stats.s_std = file.read_float("s_std");
  const int64_t total = stats.layers.empty() ? 0 : stats.layers.back().offset + stats.layers.back().channels;
  check(int64_t(stats.s_mean.size()) == total && int64_t(stats.s_std.size()) == total, ErrorCode::kShapeMismatch,
        h5_path + ": s_mean/s_std have " + std::to_string(stats.s_mean.size()) + " channels; the layer table has " +
            std::to_string(total));
  stats.num_samples = file.attr_int("/", "num_samples");
  stats.seed = file.attr_int("/", "seed");
  stats.psi = file.attr_double("/", "psi");
  stats.truncation_cutoff =
      file.has_attr("/", "truncation_cutoff") ? static_cast<int>(file.attr_int("/", "truncation_cutoff")) : -1;
  stats.truncation_rule = attr_or(file, "truncation_rule");
  stats.generator_sha256 = attr_or(file, "generator_sha256");
  stats.created = attr_or(file, "created");
  return stats;
}

void StyleStats::save(const std::string& h5_path) const {
  AtomicFile out(h5_path);
  {
    h5::File file = h5::File::create(out.temp_path());
    write_layer_table(file, layers, nullptr);
    file.write_float("s_mean", s_mean.data(), {int64_t(s_mean.size())});
    file.write_float("s_std", s_std.data(), {int64_t(s_std.size())});
    file.set_attr("/", "num_samples", num_samples);
    file.set_attr("/", "seed", seed);
    file.set_attr("/", "psi", psi);
    file.set_attr("/", "std", "population (ddof 0)");
    file.set_attr("/", "truncation_cutoff", int64_t{truncation_cutoff});
    file.set_attr("/", "truncation_rule", truncation_rule);
    file.set_attr("/", "generator_sha256", generator_sha256);
    file.set_attr("/", "created", created);
    file.close();
  }
  out.commit();
}

// ---------------------------------------------------------------------------- Directions

std::vector<LayerSpec> Directions::layers() const {
  std::vector<LayerSpec> out;
  for (size_t i = 0; i < layer_names.size(); ++i)
    out.push_back(LayerSpec{layer_names[i], layer_offsets[i], layer_channels[i], layer_is_conv[i], layer_w_index[i],
                            i < layer_resolution.size() ? layer_resolution[i] : 0});
  return out;
}

void Directions::set_layout(const std::vector<LayerSpec>& layers, const std::vector<bool>& covered, int64_t dim) {
  check(covered.size() == layers.size(), ErrorCode::kInternal, "coverage mask does not match the layer table");
  layer_names.clear();
  layer_offsets.clear();
  layer_channels.clear();
  layer_is_conv.clear();
  layer_covered.clear();
  layer_w_index.clear();
  layer_resolution.clear();
  covered_channels.clear();
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerSpec& l = layers[i];
    check(!covered[i] || l.is_conv, ErrorCode::kInvalidArgument,
          "layer " + l.name + " is a toRGB layer; Δi covers conv layers only");
    layer_names.push_back(l.name);
    layer_offsets.push_back(l.offset);
    layer_channels.push_back(l.channels);
    layer_is_conv.push_back(l.is_conv);
    layer_covered.push_back(covered[i]);
    layer_w_index.push_back(l.w_index);
    layer_resolution.push_back(l.resolution);
    if (covered[i])
      for (int64_t c = 0; c < l.channels; ++c) covered_channels.push_back(l.offset + c);
  }
  embed_dim = dim;
  fs3.assign(covered_channels.size() * dim, 0.0f);
  dead.assign(covered_channels.size(), 0);
}

void Directions::validate() const {
  const size_t n = layer_names.size();
  check(layer_offsets.size() == n && layer_channels.size() == n && layer_is_conv.size() == n &&
            layer_covered.size() == n && layer_w_index.size() == n,
        ErrorCode::kShapeMismatch, "directions layer table columns have different lengths");
  int64_t offset = 0;
  std::vector<int64_t> expected_rows;
  for (size_t i = 0; i < n; ++i) {
    check(layer_offsets[i] == offset, ErrorCode::kShapeMismatch,
          "directions layer " + layer_names[i] + " starts at " + std::to_string(layer_offsets[i]) + "; expected " +
              std::to_string(offset) + " (layers must tile S)");
    check(!layer_covered[i] || layer_is_conv[i], ErrorCode::kShapeMismatch,
          "directions cover toRGB layer " + layer_names[i]);
    if (layer_covered[i])
      for (int64_t c = 0; c < layer_channels[i]; ++c) expected_rows.push_back(offset + c);
    offset += layer_channels[i];
  }
  check(int64_t(s_mean.size()) == offset && int64_t(s_std.size()) == offset, ErrorCode::kShapeMismatch,
        "directions s_mean/s_std have " + std::to_string(s_mean.size()) + " channels; S has " +
            std::to_string(offset));
  check(covered_channels == expected_rows, ErrorCode::kShapeMismatch,
        "directions covered_channels do not match the covered layers of the table");
  check(embed_dim > 0 && int64_t(fs3.size()) == covered() * embed_dim, ErrorCode::kShapeMismatch,
        "directions fs3 holds " + std::to_string(fs3.size()) + " floats; expected " + std::to_string(covered()) +
            " x " + std::to_string(embed_dim));
  check(int64_t(dead.size()) == covered(), ErrorCode::kShapeMismatch, "directions dead mask has the wrong length");
  for (int64_t r = 0; r < covered(); ++r) {
    double norm2 = 0;
    for (int64_t i = 0; i < embed_dim; ++i) {
      const float v = fs3[r * embed_dim + i];
      check(std::isfinite(v), ErrorCode::kCorruptFile,
            "directions fs3 row " + std::to_string(r) + " contains a non-finite value");
      norm2 += double(v) * v;
    }
    if (dead[r])
      check(norm2 == 0, ErrorCode::kCorruptFile, "dead directions row " + std::to_string(r) + " is not zero");
    else
      check(std::abs(std::sqrt(norm2) - 1.0) < 1e-3, ErrorCode::kCorruptFile,
            "directions fs3 row " + std::to_string(r) + " has norm " + std::to_string(std::sqrt(norm2)) +
                "; expected a unit vector");
  }
}

Directions Directions::load(const std::string& h5_path) {
  h5::File file = h5::File::open_read(h5_path);
  Directions d;
  std::vector<bool> covered;
  std::vector<LayerSpec> layers = read_layer_table(file, &covered);
  h5::Shape fs3_shape;
  std::vector<float> fs3 = file.read_float("fs3", &fs3_shape);
  check(fs3_shape.size() == 2, ErrorCode::kCorruptFile,
        h5_path + ": fs3 has shape " + h5::shape_string(fs3_shape) + "; expected [covered, E]");
  d.set_layout(layers, covered, fs3_shape[1]);
  std::vector<int64_t> stored_rows = file.read_int64("covered_channels");
  check(stored_rows == d.covered_channels, ErrorCode::kCorruptFile,
        h5_path + ": covered_channels disagree with the layer table");
  d.fs3 = std::move(fs3);
  d.s_mean = file.read_float("s_mean");
  d.s_std = file.read_float("s_std");
  d.dead = file.read_uint8("dead");
  DirectionsInfo& info = d.info;
  info.generator_sha256 = attr_or(file, "generator_sha256");
  info.clip_sha256 = attr_or(file, "clip_sha256");
  info.source = attr_or(file, "source");
  info.images_per_channel = file.has_attr("/", "images_per_channel") ? file.attr_int("/", "images_per_channel") : 0;
  info.seeds = attr_or(file, "seeds");
  info.step_sigmas = file.has_attr("/", "step_sigmas") ? file.attr_double("/", "step_sigmas") : 5.0;
  info.psi = file.has_attr("/", "psi") ? file.attr_double("/", "psi") : 0.7;
  info.truncation_rule = attr_or(file, "truncation_rule");
  info.coverage = attr_or(file, "coverage");
  info.variant = attr_or(file, "variant");
  info.stats_info = attr_or(file, "stats_info");
  info.render = attr_or(file, "render");
  info.tool_version = attr_or(file, "tool_version");
  info.torch_version = attr_or(file, "torch_version");
  info.created = attr_or(file, "created");
  if (file.has_attr("/", "shard_count")) {
    info.shard.index = file.attr_int("/", "shard_index");
    info.shard.count = file.attr_int("/", "shard_count");
    info.shard_row_begin = file.attr_int("/", "shard_row_begin");
    info.shard_row_end = file.attr_int("/", "shard_row_end");
    info.shard_settings = attr_or(file, "shard_settings");
  }
  file.close();
  try {
    d.validate();
  } catch (const Error& e) {
    throw Error(e.code(), h5_path + ": " + e.what());
  }
  return d;
}

void Directions::save(const std::string& h5_path) const {
  validate();
  AtomicFile out(h5_path);
  {
    h5::File file = h5::File::create(out.temp_path());
    std::vector<bool> covered_flags(layer_covered.begin(), layer_covered.end());
    write_layer_table(file, layers(), &covered_flags);
    file.write_float("fs3", fs3.data(), {covered(), embed_dim});
    file.write_int64("covered_channels", covered_channels.data(), {covered()});
    file.write_float("s_mean", s_mean.data(), {int64_t(s_mean.size())});
    file.write_float("s_std", s_std.data(), {int64_t(s_std.size())});
    file.write_uint8("dead", dead.data(), {int64_t(dead.size())});
    file.set_attr("/", "format", int64_t{1});
    file.set_attr("/", "embed_dim", embed_dim);
    file.set_attr("/", "generator_sha256", info.generator_sha256);
    file.set_attr("/", "clip_sha256", info.clip_sha256);
    file.set_attr("/", "source", info.source);
    file.set_attr("/", "images_per_channel", info.images_per_channel);
    file.set_attr("/", "seeds", info.seeds);
    file.set_attr("/", "step_sigmas", info.step_sigmas);
    file.set_attr("/", "psi", info.psi);
    file.set_attr("/", "truncation_rule", info.truncation_rule);
    file.set_attr("/", "coverage", info.coverage);
    file.set_attr("/", "variant", info.variant);
    file.set_attr("/", "stats_info", info.stats_info);
    file.set_attr("/", "render", info.render);
    file.set_attr("/", "tool_version", info.tool_version);
    file.set_attr("/", "torch_version", info.torch_version);
    file.set_attr("/", "created", info.created);
    if (info.shard.active()) {
      file.set_attr("/", "shard_index", info.shard.index);
      file.set_attr("/", "shard_count", info.shard.count);
      file.set_attr("/", "shard_row_begin", info.shard_row_begin);
      file.set_attr("/", "shard_row_end", info.shard_row_end);
      file.set_attr("/", "shard_settings", info.shard_settings);
    }
    file.close();
  }
  out.commit();
}

// ---------------------------------------------------------------------------- shards

Directions merge_direction_shards(const std::vector<std::string>& shard_paths) {
  check(!shard_paths.empty(), ErrorCode::kInvalidArgument, "merge-directions needs the shard files");
  std::vector<Directions> shards;
  std::vector<ShardPiece> pieces;
  for (const std::string& path : shard_paths) {
    shards.push_back(Directions::load(path));
    const DirectionsInfo& info = shards.back().info;
    check(info.shard.active(), ErrorCode::kInvalidArgument,
          path + " is not a directions shard (made by `feu-indexer directions --shard K/N`)");
    check_same_shard_settings(shard_paths.front(), shards.front().info.shard_settings, path, info.shard_settings);
    check(info.shard_row_begin >= 0 && info.shard_row_begin <= info.shard_row_end &&
              info.shard_row_end <= shards.back().covered(),
          ErrorCode::kCorruptFile, path + ": shard rows out of range");
    pieces.push_back(ShardPiece{path, info.shard, info.shard_row_begin, info.shard_row_end});
  }
  Directions merged = shards.front();
  for (size_t i = 1; i < shards.size(); ++i)
    check(shards[i].layer_names == merged.layer_names && shards[i].layer_offsets == merged.layer_offsets &&
              shards[i].covered_channels == merged.covered_channels && shards[i].embed_dim == merged.embed_dim &&
              shards[i].s_mean == merged.s_mean && shards[i].s_std == merged.s_std,
          ErrorCode::kArtifactMismatch,
          shard_paths[i] + " has another layer table, coverage or statistics than " + shard_paths.front());
  check_shard_cover(pieces, merged.covered(), "directions");
  const int64_t dim = merged.embed_dim;
  for (size_t i = 0; i < shards.size(); ++i) {
    const int64_t begin = pieces[i].row_begin, end = pieces[i].row_end;
    std::copy(shards[i].fs3.begin() + begin * dim, shards[i].fs3.begin() + end * dim, merged.fs3.begin() + begin * dim);
    std::copy(shards[i].dead.begin() + begin, shards[i].dead.begin() + end, merged.dead.begin() + begin);
  }
  merged.info.shard = Shard{};
  merged.info.shard_row_begin = merged.info.shard_row_end = 0;
  merged.info.shard_settings.clear();
  merged.validate();
  return merged;
}

// ---------------------------------------------------------------------------- .npy

namespace {

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1f;
  uint32_t mantissa = h & 0x3ff;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      exponent = 127 - 15 + 1;
      while (!(mantissa & 0x400)) {
        mantissa <<= 1;
        --exponent;
      }
      mantissa &= 0x3ff;
      bits = sign | (exponent << 23) | (mantissa << 13);
    }
  } else if (exponent == 31) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

// Value of `key` in the header dict text "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }".
std::string header_value(const std::string& header, const std::string& key, const std::string& path) {
  const std::string quoted = "'" + key + "'";
  size_t at = header.find(quoted);
  check(at != std::string::npos, ErrorCode::kCorruptFile, path + ": .npy header has no '" + key + "' entry");
  at = header.find(':', at);
  check(at != std::string::npos, ErrorCode::kCorruptFile, path + ": malformed .npy header");
  ++at;
  while (at < header.size() && header[at] == ' ') ++at;
  size_t end;
  if (header[at] == '\'') {
    end = header.find('\'', at + 1);
    return header.substr(at + 1, end - at - 1);
  }
  if (header[at] == '(') {
    end = header.find(')', at);
    return header.substr(at, end - at + 1);
  }
  end = header.find_first_of(",}", at);
  return header.substr(at, end - at);
}

}  // namespace

NpyArray read_npy(const std::string& path) {
  std::vector<uint8_t> bytes = read_file(path);
  check(bytes.size() >= 10 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0, ErrorCode::kCorruptFile,
        path + " is not a .npy file (no \\x93NUMPY magic)");
  const int major = bytes[6];
  size_t header_len, header_start;
  if (major == 1) {
    header_len = bytes[8] | (size_t(bytes[9]) << 8);
    header_start = 10;
  } else {
    check(bytes.size() >= 12, ErrorCode::kCorruptFile, path + ": truncated .npy header");
    header_len = bytes[8] | (size_t(bytes[9]) << 8) | (size_t(bytes[10]) << 16) | (size_t(bytes[11]) << 24);
    header_start = 12;
  }
  check(header_start + header_len <= bytes.size(), ErrorCode::kCorruptFile, path + ": truncated .npy header");
  const std::string header(bytes.begin() + header_start, bytes.begin() + header_start + header_len);
  NpyArray array;
  array.dtype = header_value(header, "descr", path);
  const std::string fortran = header_value(header, "fortran_order", path);
  check(fortran == "False", ErrorCode::kUnsupported, path + ": Fortran-order .npy arrays are not supported");
  const std::string shape_text = header_value(header, "shape", path);
  {
    std::string inner = shape_text.substr(1, shape_text.size() - 2);
    std::stringstream stream(inner);
    std::string item;
    while (std::getline(stream, item, ',')) {
      size_t first = item.find_first_not_of(' ');
      if (first == std::string::npos) continue;
      array.shape.push_back(std::stoll(item.substr(first)));
    }
  }
  int64_t count = 1;
  for (int64_t s : array.shape) count *= s;
  const bool little = array.dtype[0] == '<' || array.dtype[0] == '|' || array.dtype[0] == '=';
  check(little, ErrorCode::kUnsupported, path + ": big-endian .npy (" + array.dtype + ") is not supported");
  const std::string kind = array.dtype.substr(1);
  check(kind == "f2" || kind == "f4", ErrorCode::kUnsupported,
        path + ": .npy dtype " + array.dtype + " is not supported (expected float16 <f2 or float32 <f4)");
  const size_t item = kind == "f2" ? 2 : 4;
  const size_t data_start = header_start + header_len;
  check(bytes.size() - data_start == size_t(count) * item, ErrorCode::kCorruptFile,
        path + ": .npy data holds " + std::to_string(bytes.size() - data_start) + " bytes; the header " +
            shape_text + " " + array.dtype + " needs " + std::to_string(size_t(count) * item));
  array.data.resize(count);
  const uint8_t* data = bytes.data() + data_start;
  for (int64_t i = 0; i < count; ++i) {
    if (item == 2) {
      uint16_t h;
      std::memcpy(&h, data + 2 * i, 2);
      array.data[i] = half_to_float(h);
    } else {
      std::memcpy(&array.data[i], data + 4 * i, 4);
    }
  }
  return array;
}

void write_npy(const std::string& path, const std::vector<float>& data, const std::vector<int64_t>& shape) {
  std::string shape_text = "(";
  for (size_t i = 0; i < shape.size(); ++i) shape_text += std::to_string(shape[i]) + (shape.size() == 1 ? "," : (i + 1 < shape.size() ? ", " : ""));
  shape_text += ")";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_text + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += char(1);
  bytes += char(0);
  bytes += char(header.size() & 0xff);
  bytes += char(header.size() >> 8);
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(data.data()), data.size() * 4);
  write_file_atomic(path, bytes);
}

Directions import_styleclip_fs3(const NpyArray& fs3, const std::vector<LayerSpec>& layers,
                                const std::vector<float>& s_mean, const std::vector<float>& s_std) {
  check(fs3.shape.size() == 2, ErrorCode::kShapeMismatch,
        "fs3.npy must be 2-d [rows, E]; got " + std::to_string(fs3.shape.size()) + " dimensions");
  const int64_t rows = fs3.shape[0], dim = fs3.shape[1];
  // Which prefix of the conv layers do the rows cover?
  std::vector<bool> covered(layers.size(), false);
  int64_t sum = 0;
  std::string prefix_sums;
  bool matched = false;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (!layers[i].is_conv) continue;
    if (sum < rows) covered[i] = true;
    sum += layers[i].channels;
    matched = matched || sum == rows;
    prefix_sums += (prefix_sums.empty() ? "" : ", ") + std::to_string(sum);
  }
  check(matched, ErrorCode::kShapeMismatch,
        "fs3.npy has " + std::to_string(rows) + " rows; expected a prefix sum of this generator's conv widths (" +
            prefix_sums + ")");
  const int64_t total = layers.empty() ? 0 : layers.back().offset + layers.back().channels;
  check(int64_t(s_mean.size()) == total && int64_t(s_std.size()) == total, ErrorCode::kShapeMismatch,
        "S statistics have " + std::to_string(s_mean.size()) + " channels; the generator's S has " +
            std::to_string(total));
  Directions d;
  d.set_layout(layers, covered, dim);
  d.s_mean = s_mean;
  d.s_std = s_std;
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = fs3.data.data() + r * dim;
    double norm2 = 0;
    bool finite = true;
    for (int64_t i = 0; i < dim; ++i) {
      finite = finite && std::isfinite(src[i]);
      norm2 += double(src[i]) * src[i];
    }
    if (!finite || !(norm2 > 0)) {
      d.dead[r] = 1;
      continue;
    }
    const double inv = 1.0 / std::sqrt(norm2);
    for (int64_t i = 0; i < dim; ++i) d.fs3[r * dim + i] = static_cast<float>(src[i] * inv);
  }
  d.info.source = "import-styleclip";
  d.info.coverage = std::to_string(rows) + " rows (StyleCLIP fs3.npy " + fs3.dtype + ")";
  d.info.variant = "unknown (StyleCLIP's published file)";
  d.info.step_sigmas = 5.0;
  d.info.images_per_channel = 100;
  return d;
}

}  // namespace feu::index
