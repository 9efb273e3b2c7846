#include "tensor/latent_file.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/npy.h"
#include "core/text.h"
#include "tensor/torch_file.h"

namespace feu::latents {
namespace {

// One array of a file and the kind the file states for it, if any.
struct Array {
  std::vector<int64_t> shape;
  std::vector<float> values;
  std::optional<Kind> stated;  // a kind attribute, or a dataset name that means one kind
  std::string source;
};

std::string join(const std::vector<std::string>& names, const char* separator) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? separator : "") + names[i];
  return out;
}

std::string signature_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), ErrorCode::kNotFound, "latent file not found: " + path);
  char bytes[8] = {};
  in.read(bytes, sizeof bytes);
  return std::string(bytes, static_cast<size_t>(in.gcount()));
}

std::optional<Kind> kind_attribute(const h5::File& file, const std::string& object) {
  if (!file.has_attr(object, "kind")) return std::nullopt;
  const std::string name = file.attr_string(object, "kind");
  try {
    return parse_kind(name, "attribute 'kind'");
  } catch (const Error&) {
    throw Error(ErrorCode::kCorruptFile, file.path() + ": attribute 'kind' of " + object + " is " +
                                             quote_text(name) + " (expected z, w, wplus or s)");
  }
}

// styles/<layer> in S order, concatenated per latent into [N, total_channels].
Array read_styles_group(const h5::File& file, const Shapes& shapes) {
  const std::string& path = file.path();
  std::set<std::string> known(shapes.layer_names.begin(), shapes.layer_names.end());
  for (const std::string& name : file.list("styles"))
    check(known.count(name) > 0, ErrorCode::kShapeMismatch,
          path + ": styles/" + name + " is not a style layer of this generator (its layers: " +
              join(shapes.layer_names, ", ") + ")");
  const int64_t total = shapes.total_channels();
  std::vector<std::vector<float>> layers;
  int64_t count = -1;
  for (size_t l = 0; l < shapes.layer_names.size(); ++l) {
    const std::string key = "styles/" + shapes.layer_names[l];
    const int64_t channels = shapes.layer_channels[l];
    check(file.has(key), ErrorCode::kShapeMismatch,
          path + ": missing dataset " + key + " [N, " + std::to_string(channels) + "]");
    h5::Shape shape;
    layers.push_back(file.read_float(key, &shape));
    check(shape.size() == 2 && shape[1] == channels && (count < 0 || shape[0] == count),
          ErrorCode::kShapeMismatch,
          path + ": " + key + " has shape " + h5::shape_string(shape) + ", expected [" +
              (count < 0 ? std::string("N") : std::to_string(count)) + ", " +
              std::to_string(channels) + "]");
    count = shape[0];
  }
  Array out{
      {count, total}, std::vector<float>(static_cast<size_t>(count * total)), Kind::kS, "styles/"};
  int64_t offset = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    const int64_t channels = shapes.layer_channels[l];
    for (int64_t row = 0; row < count; ++row)
      std::copy_n(layers[l].begin() + row * channels, channels,
                  out.values.begin() + row * total + offset);
    offset += channels;
  }
  return out;
}

// The flat `s`, whose layer attributes (when written) must name this generator's S order.
Array read_flat_s(const h5::File& file, const std::string& name, const Shapes& shapes) {
  Array out;
  out.values = file.read_float(name, &out.shape);
  out.stated = Kind::kS;
  out.source = name;
  if (file.has_attr(name, "layer_names")) {
    const std::string names = file.attr_string(name, "layer_names");
    check(names == join(shapes.layer_names, ","), ErrorCode::kShapeMismatch,
          file.path() + ": " + name + " is in the layer order " + names +
              "; this generator's S order is " + join(shapes.layer_names, ","));
  }
  if (file.has_attr(name, "layer_channels")) {
    const std::vector<double> channels = file.attr_doubles(name, "layer_channels");
    check(std::vector<int64_t>(channels.begin(), channels.end()) == shapes.layer_channels,
          ErrorCode::kShapeMismatch,
          file.path() + ": the layer widths of " + name +
              " (attribute layer_channels) are not this generator's");
  }
  return out;
}

void check_same_styles(const std::string& path, const Array& group, const Array& flat,
                       const Shapes& shapes) {
  check(flat.shape == group.shape, ErrorCode::kCorruptFile,
        path + ": s has shape " + h5::shape_string(flat.shape) + " but styles/ holds " +
            h5::shape_string(group.shape) + " (the same latents, expected the same shape)");
  const int64_t total = shapes.total_channels();
  for (size_t i = 0; i < flat.values.size(); ++i) {
    const float a = group.values[i], b = flat.values[i];
    if (std::fabs(a - b) <= 1e-6f * std::max(1.0f, std::fabs(a))) continue;
    const int64_t row = static_cast<int64_t>(i) / total, channel = static_cast<int64_t>(i) % total;
    size_t layer = 0;
    for (int64_t offset = 0; offset + shapes.layer_channels[layer] <= channel; ++layer)
      offset += shapes.layer_channels[layer];
    throw Error(ErrorCode::kCorruptFile,
                path + ": styles/ and s disagree (latent " + std::to_string(row) + ", layer " +
                    shapes.layer_names[layer] + ": " + std::to_string(a) + " against " +
                    std::to_string(b) + "); s must be styles/<layer> concatenated in S order (" +
                    join(shapes.layer_names, ", ") + ")");
  }
}

Array read_h5(const std::string& path, const Shapes& shapes, std::optional<Kind> wanted) {
  h5::File file = h5::File::open_read(path);
  if (!wanted) wanted = kind_attribute(file, "/");
  // The datasets feu and its users write latents under, with the kind each name implies.
  struct Candidate {
    std::string name;
    std::optional<Kind> kind;
  };
  std::vector<Candidate> candidates;
  for (const char* name : {"z", "w", "ws", "wplus", "s"}) {
    if (!file.has(name)) continue;
    check(!file.is_group(name), ErrorCode::kCorruptFile,
          path + ": '" + name + "' is a group, expected a dataset");
    std::optional<Kind> kind = kind_attribute(file, name);
    if (!kind) {
      const std::string n = name;
      if (n == "z")
        kind = Kind::kZ;
      else if (n == "w")
        kind = Kind::kW;
      else if (n == "wplus")
        kind = Kind::kWPlus;
      else if (n == "s")
        kind = Kind::kS;
      else
        kind = file.shape(n).size() == 3 ? Kind::kWPlus : Kind::kW;  // "ws": W or W+ by rank
    }
    candidates.push_back({name, kind});
  }
  const bool has_group = file.has("styles");
  if (has_group) {
    check(file.is_group("styles"), ErrorCode::kCorruptFile,
          path + ": 'styles' must be a group of per-layer datasets styles/<layer>");
    const std::optional<Kind> kind = kind_attribute(file, "styles");
    check(!kind || *kind == Kind::kS, ErrorCode::kShapeMismatch,
          path + ": the styles/ group says kind " + kind_name(*kind) +
              ", but per-layer styles are S");
    candidates.push_back({"styles/", Kind::kS});
  }
  std::set<Kind> kinds;
  std::vector<std::string> listed;
  for (const Candidate& c : candidates) {
    kinds.insert(*c.kind);
    listed.push_back(c.name + " (" + kind_name(*c.kind) + ")");
  }
  check(!kinds.empty(), ErrorCode::kNotFound,
        path + ": no latents (expected a dataset z, w, ws, wplus or s, or a group styles/<layer>)");
  Kind kind;
  if (wanted) {
    kind = *wanted;
    check(kinds.count(kind) > 0, ErrorCode::kNotFound,
          path + ": no " + kind_name(kind) + " latents in the file (it holds " +
              join(listed, ", ") + ")");
  } else {
    check(kinds.size() == 1, ErrorCode::kInvalidArgument,
          path + " holds several kinds of latents (" + join(listed, ", ") +
              "): say which with --latent-kind, or set the file's root attribute kind");
    kind = *kinds.begin();
  }
  size_t found = 0;
  const Candidate* chosen = nullptr;  // a dataset, not the styles/ group
  for (const Candidate& c : candidates) {
    if (*c.kind == kind && c.name != "styles/") {
      ++found;
      chosen = &c;
    }
  }
  check(found <= 1, ErrorCode::kInvalidArgument,
        path + " holds " + std::to_string(found) + " datasets of " + kind_name(kind) +
            " latents (" + join(listed, ", ") + "); keep one");
  if (kind == Kind::kS) {
    if (has_group && chosen) {
      Array group = read_styles_group(file, shapes);
      Array flat = read_flat_s(file, chosen->name, shapes);
      check_same_styles(path, group, flat, shapes);
      return flat;
    }
    return has_group ? read_styles_group(file, shapes) : read_flat_s(file, chosen->name, shapes);
  }
  Array out;
  out.values = file.read_float(chosen->name, &out.shape);
  out.stated = kind;
  out.source = chosen->name;
  return out;
}

Array read_npy(const std::string& path) {
  npy::FloatArray array = npy::read_float(path);
  return {array.shape, std::move(array.values), std::nullopt, "array"};
}

Array read_torch(const std::string& path) {
  const torch_file::ValuePtr root = torch_file::read(path);
  check(root->kind() == torch_file::Value::Kind::kTensor, ErrorCode::kCorruptFile,
        path + ": holds a " + torch_file::Value::kind_name(root->kind()) +
            ", expected one tensor of latents (as e4e's torch.save(latents, 'latents.pt'))");
  const at::Tensor& tensor = root->as_tensor();
  const at::ScalarType type = tensor.scalar_type();
  check(type == at::kFloat || type == at::kDouble || type == at::kHalf || type == at::kBFloat16,
        ErrorCode::kUnsupported,
        path + ": a tensor of " + std::string(c10::toString(type)) +
            ", expected float32, float64 or float16");
  at::Tensor values = tensor.to(at::kFloat).contiguous();
  Array out;
  out.shape.assign(tensor.sizes().begin(), tensor.sizes().end());
  out.values.assign(values.data_ptr<float>(), values.data_ptr<float>() + values.numel());
  out.source = "tensor";
  return out;
}

// The kind and row count of an array, from its shape, what the file states
// and what the caller asked for.
Latents resolve(const std::string& path, Array array, const Shapes& shapes,
                std::optional<Kind> asked) {
  const std::string where =
      path + (array.source == "array" || array.source == "tensor" ? "" : " " + array.source);
  if (asked && array.stated)
    check(*asked == *array.stated, ErrorCode::kInvalidArgument,
          where + " holds " + kind_name(*array.stated) + " latents, not " + kind_name(*asked) +
              " as --latent-kind says");
  std::optional<Kind> kind = asked ? asked : array.stated;
  const std::string no_z =
      where +
      ": z latents need the generator's mapping network, which this command does not "
      "load; give w, wplus or s latents, or render z with feu-indexer generate --latents";
  check(kind != Kind::kZ || shapes.z_dim > 0, ErrorCode::kUnsupported, no_z);
  std::vector<int64_t> shape = array.shape;
  const std::string shape_text = h5::shape_string(shape);
  check(shape.size() >= 1 && shape.size() <= 3, ErrorCode::kShapeMismatch,
        where + " has shape " + shape_text + ", expected latents [N, ...] for this generator: z " +
            shapes.shape_text(Kind::kZ) + ", w " + shapes.shape_text(Kind::kW) + ", wplus " +
            shapes.shape_text(Kind::kWPlus) + " or s " + shapes.shape_text(Kind::kS));
  if (shape.size() == 1) shape.insert(shape.begin(), 1);  // one latent
  if (shape.size() == 3 || (kind == Kind::kWPlus && shape.size() == 2 &&
                            shape[0] == shapes.num_ws && shape[1] == shapes.w_dim)) {
    if (shape.size() == 2) shape.insert(shape.begin(), 1);  // one W+ code [num_ws, w_dim]
    check(!kind || *kind == Kind::kWPlus, ErrorCode::kShapeMismatch,
          where + " has shape " + shape_text + " (W+), but " +
              (asked ? "--latent-kind" : "its kind attribute") + " says " + kind_name(*kind));
    check(shape[1] == shapes.num_ws && shape[2] == shapes.w_dim, ErrorCode::kShapeMismatch,
          where + " has shape " + shape_text + ", expected W+ " + shapes.shape_text(Kind::kWPlus) +
              " for this generator");
    kind = Kind::kWPlus;
    shape = {shape[0], shapes.num_ws * shapes.w_dim};
  } else {
    const int64_t width = shape[1];
    if (!kind) {
      std::vector<Kind> fitting;
      for (Kind k : {Kind::kZ, Kind::kW, Kind::kS}) {
        const int64_t k_width = k == Kind::kZ && shapes.z_dim == 0 ? shapes.w_dim : shapes.width(k);
        if (k_width == width) fitting.push_back(k);
      }
      check(!fitting.empty(), ErrorCode::kShapeMismatch,
            where + " has shape " + shape_text + ", which fits no latent of this generator: z " +
                shapes.shape_text(Kind::kZ) + ", w " + shapes.shape_text(Kind::kW) + ", wplus " +
                shapes.shape_text(Kind::kWPlus) + " or s " + shapes.shape_text(Kind::kS));
      std::vector<std::string> names;
      for (Kind k : fitting) names.push_back(kind_name(k));
      check(fitting.size() == 1, ErrorCode::kInvalidArgument,
            where + " has shape " + shape_text + ", which may hold " + join(names, " or ") +
                " latents: say which with --latent-kind " + join(names, "|"));
      kind = fitting[0];
    } else if (width != shapes.width(*kind) || (*kind == Kind::kWPlus)) {
      std::string fits;
      for (Kind k : {Kind::kZ, Kind::kW, Kind::kS})
        if (k != *kind && shapes.width(k) == width && fits.empty())
          fits = std::string(" (the shape of ") + kind_name(k) + ")";
      throw Error(ErrorCode::kShapeMismatch,
                  where + " has shape " + shape_text + fits + ", but " +
                      (asked ? std::string("--latent-kind says ") : std::string("its kind is ")) +
                      kind_name(*kind) + ", expected " + shapes.shape_text(*kind) +
                      " for this generator");
    }
  }
  check(*kind != Kind::kZ || shapes.z_dim > 0, ErrorCode::kUnsupported, no_z);
  Latents out;
  out.kind = *kind;
  out.count = shape[0];
  out.source = array.source;
  check(out.count > 0, ErrorCode::kInvalidArgument, where + " holds no latents (N = 0)");
  const int64_t width = shape[1];
  for (size_t i = 0; i < array.values.size(); ++i) {
    check(std::isfinite(array.values[i]), ErrorCode::kInvalidArgument,
          where + ": latent " + std::to_string(static_cast<int64_t>(i) / width) + ", value " +
              std::to_string(static_cast<int64_t>(i) % width) + " is " +
              (std::isnan(array.values[i]) ? "NaN" : "infinite") + " (expected finite numbers)");
  }
  out.values = std::move(array.values);
  return out;
}

}  // namespace

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kZ: return "z";
    case Kind::kW: return "w";
    case Kind::kWPlus: return "wplus";
    case Kind::kS: return "s";
  }
  return "?";
}

Kind parse_kind(const std::string& name, const std::string& what) {
  for (Kind kind : {Kind::kZ, Kind::kW, Kind::kWPlus, Kind::kS})
    if (name == kind_name(kind)) return kind;
  throw Error(ErrorCode::kInvalidArgument,
              what + " " + quote_text(name) + " is not a latent kind (expected z, w, wplus or s)");
}

int64_t Shapes::total_channels() const {
  int64_t total = 0;
  for (int64_t channels : layer_channels) total += channels;
  return total;
}

int64_t Shapes::width(Kind kind) const {
  switch (kind) {
    case Kind::kZ: return z_dim;
    case Kind::kW: return w_dim;
    case Kind::kWPlus: return num_ws * w_dim;
    case Kind::kS: return total_channels();
  }
  return 0;
}

std::string Shapes::shape_text(Kind kind) const {
  if (kind == Kind::kWPlus)
    return "[N, " + std::to_string(num_ws) + ", " + std::to_string(w_dim) + "]";
  if (kind == Kind::kZ && z_dim == 0) return "[N, z_dim]";
  return "[N, " + std::to_string(width(kind)) + "]";
}

Latents read(const std::string& path, const Shapes& shapes, std::optional<Kind> kind) {
  check(shapes.layer_names.size() == shapes.layer_channels.size() && shapes.w_dim > 0 &&
            shapes.num_ws > 0,
        ErrorCode::kInternal, "latents::read needs the generator's shapes");
  const std::string signature = signature_of(path);
  Array array;
  std::string format;
  if (signature.size() == 8 && signature == std::string("\x89HDF\r\n\x1a\n", 8)) {
    array = read_h5(path, shapes, kind);
    format = "h5";
  } else if (signature.compare(0, 6, "\x93NUMPY") == 0) {
    array = read_npy(path);
    format = "npy";
  } else if (signature.compare(0, 2, "PK") == 0) {
    array = read_torch(path);
    format = "pt";
  } else if (signature.compare(0, 1, "\x80") == 0) {
    throw Error(ErrorCode::kUnsupported,
                path +
                    ": a bare pickle (an NVlabs .pkl or a pre-1.6 torch.save); expected "
                    "HDF5, NumPy .npy, or a torch.save zip such as e4e's latents.pt");
  } else {
    throw Error(ErrorCode::kCorruptFile,
                path +
                    ": not a latent file (expected HDF5 .h5, NumPy .npy or a torch.save "
                    ".pt; its first bytes match none of them)");
  }
  Latents out = resolve(path, std::move(array), shapes, kind);
  out.format = format;
  return out;
}

void write_styles(h5::File& file, const Shapes& shapes, const float* values, int64_t count) {
  const int64_t total = shapes.total_channels();
  file.write_float("s", values, {count, total});
  file.set_attr("s", "kind", "s");
  file.set_attr("s", "layer_names", join(shapes.layer_names, ","));
  std::vector<double> offsets, channels;
  int64_t offset = 0;
  for (int64_t width : shapes.layer_channels) {
    offsets.push_back(static_cast<double>(offset));
    channels.push_back(static_cast<double>(width));
    offset += width;
  }
  file.set_attr("s", "layer_offsets", offsets);
  file.set_attr("s", "layer_channels", channels);
  offset = 0;
  for (size_t l = 0; l < shapes.layer_names.size(); ++l) {
    const int64_t width = shapes.layer_channels[l];
    std::vector<float> layer(static_cast<size_t>(count * width));
    for (int64_t row = 0; row < count; ++row)
      std::copy_n(values + row * total + offset, width, layer.begin() + row * width);
    file.write_float("styles/" + shapes.layer_names[l], layer.data(), {count, width});
    offset += width;
  }
  file.set_attr("styles", "kind", "s");
}

}  // namespace feu::latents
