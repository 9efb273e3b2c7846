// A float matrix kept a second time as int8 codes (one scale per row), for
// scans that must be exact but are bound by memory bandwidth: the codes are
// a quarter of the bytes, and every estimate comes with a bound on its
// distance from the exact float dot product, so a caller rescores in float
// only the rows whose bound interval can change its answer. Used for the
// corpus scan (70k x 512) and for r = fs3 · Δt (5,376 x 512). Plain C++.
#pragma once

#include <cstdint>
#include <vector>

#include "core/huge_pages.h"

namespace feu::edit {

class Int8Rows {
 public:
  Int8Rows() = default;
  Int8Rows(const float* data,  // [rows, dim], row-major; not kept
           int64_t rows,
           int64_t dim);

  struct Estimates {
    std::vector<float> value;  // [rows] estimate of row_r · query
    std::vector<float> bound;  // [rows] |exact - value[r]| <= bound[r]
    // The extremes of the interval ends value ∓ bound over each block of
    // kBlock rows (the last one may be shorter), so a selection can skip
    // whole blocks: [blocks].
    static constexpr int64_t kBlock = 64;
    std::vector<float> lower_max, lower_min;  // of value - bound
    std::vector<float> upper_max, upper_min;  // of value + bound
  };

  // The bound holds for `exact` = the dot product summed in float in 8 or
  // more lanes (more lanes, shorter sums, smaller rounding), or summed in
  // double and rounded to float: how the corpus scan and the mapping compute
  // the values they compare. `threads` > 1 splits the scan (OpenMP) when it
  // is large.
  Estimates estimate(const float* query, int threads = 1) const;

  int64_t rows() const { return static_cast<int64_t>(scales_.size()); }
  int64_t dim() const { return dim_; }

 private:
  int64_t dim_ = 0;
  HugePageBuffer codes_;          // [rows, dim] int8
  std::vector<float> scales_;     // [rows]: row ≈ scale · code
  std::vector<float> residuals_;  // [rows]: |row - scale · code|, rounded up
  std::vector<float> norms_;      // [rows]: |row|, rounded up
};

}  // namespace feu::edit
