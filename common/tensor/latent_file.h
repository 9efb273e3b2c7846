// Latent codes in files: the one reader of every format feu takes latents in
// (`feu edit --latent-file`, `feu-indexer generate --latents`) and the layout
// feu writes S codes in.
//
//   .h5   datasets z [N, z_dim]; ws or w [N, w_dim]; ws or wplus [N, num_ws, w_dim];
//         s [N, total_channels] (S order); group styles/<layer> [N, C_layer]. A `kind`
//         attribute (z, w, wplus, s) on a dataset, a group or the file's root states
//         what it holds; the root's picks the latent of a file holding several.
//   .npy  float32 or float64, C order (numpy.save).
//   .pt   e4e's latents.pt: torch.save of one tensor [N, num_ws, w_dim].
//
// The format is told by the file's signature, not its name. An array's kind is
// taken from its shape when only one kind fits: [N, num_ws, w_dim] is W+ and
// [N, total_channels] S, but [N, w_dim] may be z or w, which the file (a
// dataset's name or kind attribute) or the caller must say. A 1-d array is
// one latent.
//
// S order is the generator's synthesis order of style layers (b4.conv1,
// b4.torgb, b8.conv0, ...), not the alphabetical order HDF5 tools list the
// styles/ group in: concatenating styles/<layer> as listed gives another image.
// Hence feu writes S also flat, as `s` with the layers' names, offsets and
// widths as attributes (write_styles).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/h5.h"

namespace feu::latents {

enum class Kind { kZ, kW, kWPlus, kS };

const char* kind_name(Kind kind);  // "z", "w", "wplus", "s"
// Inverse of kind_name; anything else is an invalid_argument error naming `what`
// (e.g. "--latent-kind") and the accepted names.
Kind parse_kind(const std::string& name, const std::string& what);

// The generator's latent shapes a file must fit.
struct Shapes {
  int64_t z_dim = 0;  // 0: this consumer takes no z (it lacks the mapping network)
  int64_t w_dim = 0;
  int64_t num_ws = 0;
  std::vector<std::string> layer_names;  // S order
  std::vector<int64_t> layer_channels;

  int64_t total_channels() const;
  // Values per latent of `kind`: z_dim, w_dim, num_ws * w_dim or total_channels.
  int64_t width(Kind kind) const;
  // "[N, 512]", "[N, 18, 512]", ... for messages.
  std::string shape_text(Kind kind) const;
};

struct Latents {
  Kind kind = Kind::kW;
  int64_t count = 0;          // N
  std::vector<float> values;  // [count, shapes.width(kind)] row-major, every value finite
  std::string format;         // "h5", "npy" or "pt"
  std::string source;         // where in the file: "ws", "styles/", "s", "array", "tensor"
};

// Reads the latents of `path` for a generator of `shapes`. `kind`, when given
// (--latent-kind), must agree with what the file states. Errors naming the
// file and what was expected: not_found, io_error, corrupt_file (a truncated or
// malformed file, a pickle holding anything but one tensor, styles/ and s that
// disagree), shape_mismatch (a shape this generator cannot take, a kind
// attribute contradicting the shape, S layers in another order),
// invalid_argument (an ambiguous kind, NaN or infinite values, no latents),
// unsupported (a dtype other than float16/32/64, z for a consumer without z).
Latents read(const std::string& path, const Shapes& shapes,
             std::optional<Kind> kind = std::nullopt);

// Writes S codes [count, total_channels] in S order both ways: flat as `s`
// with attributes kind = "s", layer_names (comma-separated), layer_offsets
// and layer_channels, and per layer as styles/<layer> (group attribute kind =
// "s"), for tools that want one layer.
void write_styles(h5::File& file, const Shapes& shapes, const float* values, int64_t count);

}  // namespace feu::latents
