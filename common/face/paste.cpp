// The alignment's QUAD transform maps the output square's (u, v) in [0, 1]²
// to the photo bilinearly from the corners NW, SW, SE, NE; FFHQ's quads are
// squares (c ± x ± y), so the map is affine and its inverse exact: for each
// photo pixel in the quad's bounding box, (u, v) = M⁻¹ (p − NW), the face is
// sampled there bilinearly and blended by the feathered mask.
#include "face/paste.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace feu::face {

image::Image paste_face(const image::Image& photo, const image::Image& face, const Quad& quad, double feather) {
  check(photo.width > 0 && photo.height > 0 && face.width > 0, ErrorCode::kInvalidArgument,
        "paste_face needs a photo and a face image");
  check(face.width == face.height, ErrorCode::kInvalidArgument,
        "the edited face must be square, got " + std::to_string(face.width) + "x" + std::to_string(face.height));
  check(feather > 0 && feather <= 0.5, ErrorCode::kInvalidArgument, "the feather must be in (0, 0.5]");
  const auto& q = quad.xy;
  // u runs NW -> NE, v runs NW -> SW.
  const double ux = q[6] - q[0], uy = q[7] - q[1];
  const double vx = q[2] - q[0], vy = q[3] - q[1];
  const double det = ux * vy - uy * vx;
  check(std::abs(det) > 1e-9, ErrorCode::kInvalidArgument, "the alignment quad is degenerate");
  const double min_x = std::min({q[0], q[2], q[4], q[6]}), max_x = std::max({q[0], q[2], q[4], q[6]});
  const double min_y = std::min({q[1], q[3], q[5], q[7]}), max_y = std::max({q[1], q[3], q[5], q[7]});
  const int x0 = std::max(0, static_cast<int>(std::floor(min_x))), x1 = std::min(photo.width - 1, static_cast<int>(std::ceil(max_x)));
  const int y0 = std::max(0, static_cast<int>(std::floor(min_y))), y1 = std::min(photo.height - 1, static_cast<int>(std::ceil(max_y)));

  image::Image out = photo;
  const int side = face.width;
  auto texel = [&](int x, int y, int c) -> double {
    x = std::clamp(x, 0, side - 1);
    y = std::clamp(y, 0, side - 1);
    return face.rgb[(static_cast<size_t>(y) * side + x) * 3 + c];
  };
  // Rows are independent; a close-up's square covers most of a 12 MP photo.
#pragma omp parallel for schedule(static)
  for (int py = y0; py <= y1; ++py) {
    for (int px = x0; px <= x1; ++px) {
      const double dx = px - q[0], dy = py - q[1];
      const double u = (dx * vy - dy * vx) / det;
      const double v = (ux * dy - uy * dx) / det;
      const double edge = std::min({u, 1 - u, v, 1 - v});
      if (edge <= 0) continue;
      const double t = std::min(1.0, edge / feather);
      const double mask = t * t * (3 - 2 * t);  // smoothstep: no visible ramp edge
      // Face pixel centres sit at (i + 0.5) / side.
      const double fx = u * side - 0.5, fy = v * side - 0.5;
      const int ix = static_cast<int>(std::floor(fx)), iy = static_cast<int>(std::floor(fy));
      const double ax = fx - ix, ay = fy - iy;
      uint8_t* pixel = &out.rgb[(static_cast<size_t>(py) * photo.width + px) * 3];
      for (int c = 0; c < 3; ++c) {
        const double sample = (1 - ay) * ((1 - ax) * texel(ix, iy, c) + ax * texel(ix + 1, iy, c)) +
                              ay * ((1 - ax) * texel(ix, iy + 1, c) + ax * texel(ix + 1, iy + 1, c));
        const double blended = mask * sample + (1 - mask) * pixel[c];
        pixel[c] = static_cast<uint8_t>(std::clamp(std::lround(blended), 0L, 255L));
      }
    }
  }
  return out;
}

}  // namespace feu::face
