// The dense dual coordinate descent against liblinear itself (the Debian
// library the issue names): fed the same coordinate order (rand() after
// srand(1), as liblinear 2.3 draws it), it must reach the same w up to float
// rounding; with its own generator it must reach the same optimum.
#include <gtest/gtest.h>
#include <linear.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include "core/error.h"
#include "edit/svm.h"
#include "edit/svm_solver.h"

namespace feu::edit {
namespace {

struct Problem {
  int64_t l = 0, n = 0;           // n includes the bias column
  std::vector<float> rows;        // [l, n]
  std::vector<int8_t> labels;     // [l]
};

// The FEU shape: unit rows in `dim` dimensions, positives the `half` rows
// most aligned with a random query, negatives the `half` least aligned,
// plus the bias column of 1.
Problem top_and_bottom(int64_t pool, int64_t dim, int64_t half, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> gauss;
  std::vector<double> data(static_cast<size_t>(pool * dim)), query(static_cast<size_t>(dim));
  for (double& v : query) v = gauss(rng);
  std::vector<std::pair<double, int64_t>> scored;
  for (int64_t r = 0; r < pool; ++r) {
    double length = 0, score = 0;
    for (int64_t k = 0; k < dim; ++k) length += std::pow(data[r * dim + k] = gauss(rng), 2);
    for (int64_t k = 0; k < dim; ++k) score += (data[r * dim + k] /= std::sqrt(length)) * query[k];
    scored.emplace_back(score, r);
  }
  std::sort(scored.begin(), scored.end());
  Problem p;
  p.l = 2 * half;
  p.n = dim + 1;
  for (int64_t i = 0; i < p.l; ++i) {
    const bool positive = i < half;
    const int64_t r = positive ? scored[pool - 1 - i].second : scored[i - half].second;
    for (int64_t k = 0; k < dim; ++k) p.rows.push_back(static_cast<float>(data[r * dim + k]));
    p.rows.push_back(1.0);
    p.labels.push_back(positive ? 1 : -1);
  }
  return p;
}

// Overlapping classes in a few dimensions (label noise), so many α stay
// large and shrinking is exercised.
Problem overlapping(int64_t l, int64_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> gauss;
  std::bernoulli_distribution flip(0.2);
  Problem p;
  p.l = l;
  p.n = dim + 1;
  std::vector<float> positives, negatives;
  for (int64_t i = 0; i < l; ++i) {
    std::vector<double> x(static_cast<size_t>(dim));
    for (double& v : x) v = gauss(rng);
    const bool positive = (x[0] + 0.5 * x[1] > 0) != flip(rng);
    x.push_back(1.0);
    auto& into = positive ? positives : negatives;
    for (double v : x) into.push_back(static_cast<float>(v));
  }
  // Positives first, as train_svm_direction orders them: liblinear groups
  // the samples by class, and this keeps its order equal to ours.
  p.rows = positives;
  p.rows.insert(p.rows.end(), negatives.begin(), negatives.end());
  p.labels.assign(positives.size() / (dim + 1), 1);
  p.labels.resize(static_cast<size_t>(l), -1);
  return p;
}

void silent(const char*) {}

// liblinear's train() on the same rows (positives first, so its first label
// is +1 and its w is oriented as ours), after srand(1).
std::vector<double> liblinear_w(const Problem& p, double C, double eps) {
  std::vector<feature_node> nodes;
  nodes.reserve(static_cast<size_t>(p.l * (p.n + 1)));
  std::vector<size_t> starts;
  std::vector<double> y;
  for (int64_t i = 0; i < p.l; ++i) {
    starts.push_back(nodes.size());
    for (int64_t k = 0; k < p.n; ++k) nodes.push_back(feature_node{static_cast<int>(k + 1), p.rows[i * p.n + k]});
    nodes.push_back(feature_node{-1, 0.0});
    y.push_back(p.labels[i]);
  }
  std::vector<feature_node*> x;
  for (size_t start : starts) x.push_back(&nodes[start]);
  problem prob{};
  prob.l = static_cast<int>(p.l);
  prob.n = static_cast<int>(p.n);  // the bias column is passed as an ordinary feature
  prob.y = y.data();
  prob.x = x.data();
  prob.bias = -1;
  parameter param{};
  param.solver_type = L2R_L2LOSS_SVC_DUAL;
  param.C = C;
  param.eps = eps;
  param.p = 0.1;
  set_print_string_function(&silent);
  std::srand(1);
  model* trained = train(&prob, &param);
  EXPECT_EQ(trained->label[0], 1);
  std::vector<double> w(trained->w, trained->w + p.n);
  free_and_destroy_model(&trained);
  return w;
}

IndexDraw c_rand() {
  return [](int bound) { return std::rand() % bound; };
}

double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0;
  for (size_t k = 0; k < a.size(); ++k) worst = std::max(worst, std::fabs(a[k] - b[k]));
  return worst;
}

double max_abs(const std::vector<double>& a) {
  double worst = 0;
  for (double v : a) worst = std::max(worst, std::fabs(v));
  return worst;
}

double cosine(const std::vector<double>& a, const std::vector<double>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t k = 0; k < a.size(); ++k) ab += a[k] * b[k], aa += a[k] * a[k], bb += b[k] * b[k];
  return ab / std::sqrt(aa * bb);
}

struct Case {
  const char* name;
  Problem problem;
  double C, eps;
};

std::vector<Case> cases() {
  return {{"feu shape 200 x 513", top_and_bottom(5000, 512, 100, 1), 1.0, 1e-4},
          {"feu shape, C 10", top_and_bottom(2000, 64, 50, 2), 10.0, 1e-4},
          {"overlapping 8-d", overlapping(300, 8, 3), 1.0, 1e-4},
          {"overlapping 8-d, C 0.1, eps 0.1", overlapping(300, 8, 4), 0.1, 0.1}};
}

TEST(SvmSolver, SameOrderAsLiblinearGivesLiblinearsW) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const Problem& p = c.problem;
    const std::vector<double> reference = liblinear_w(p, c.C, c.eps);
    std::srand(1);
    const DualSolution ours = solve_l2loss_svc_dual(p.rows.data(), p.labels.data(), p.l, p.n, c.C, c.eps, c_rand());
    EXPECT_TRUE(ours.converged);
    EXPECT_GT(ours.iterations, 1);
    // Same iterates up to float rounding (w is kept in float, liblinear's in double).
    EXPECT_LT(max_abs_difference(ours.w, reference), 1e-5 * max_abs(reference));
    EXPECT_GT(cosine(ours.w, reference), 1 - 1e-9);
    // w = Σ α_i y_i x_i.
    std::vector<double> from_alpha(static_cast<size_t>(p.n), 0.0);
    for (int64_t i = 0; i < p.l; ++i)
      for (int64_t k = 0; k < p.n; ++k) from_alpha[k] += ours.alpha[i] * p.labels[i] * p.rows[i * p.n + k];
    EXPECT_LT(max_abs_difference(ours.w, from_alpha), 1e-5 * max_abs(reference));
  }
}

TEST(SvmSolver, OwnGeneratorReachesLiblinearsOptimum) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const Problem& p = c.problem;
    const std::vector<double> reference = liblinear_w(p, c.C, c.eps);
    const DualSolution ours =
        solve_l2loss_svc_dual(p.rows.data(), p.labels.data(), p.l, p.n, c.C, c.eps, liblinear_lcg());
    EXPECT_TRUE(ours.converged);
    // A different coordinate order stops at a different point within the tolerance.
    EXPECT_GT(cosine(ours.w, reference), c.eps < 1e-3 ? 0.99999 : 0.999);
  }
}

TEST(SvmSolver, StopsAtLiblinearsPassCap) {
  // A tolerance of effectively zero never holds: the solver stops after
  // liblinear's 1000 passes and says so.
  const Problem p = overlapping(40, 3, 5);
  const DualSolution capped =
      solve_l2loss_svc_dual(p.rows.data(), p.labels.data(), p.l, p.n, 1.0, 1e-300, liblinear_lcg());
  EXPECT_FALSE(capped.converged);
  EXPECT_EQ(capped.iterations, 1000);
}

TEST(SvmSolver, RejectsBadLabelsAndParameters) {
  const std::vector<float> rows = {1, 0, 0, 1};
  const std::vector<int8_t> bad = {1, 0}, good = {1, -1};
  EXPECT_THROW(solve_l2loss_svc_dual(rows.data(), bad.data(), 2, 2, 1.0, 1e-4, liblinear_lcg()), Error);
  EXPECT_THROW(solve_l2loss_svc_dual(rows.data(), good.data(), 2, 2, 0.0, 1e-4, liblinear_lcg()), Error);
  EXPECT_THROW(solve_l2loss_svc_dual(rows.data(), good.data(), 2, 2, 1.0, 0.0, liblinear_lcg()), Error);
}

TEST(Svm, DirectionMatchesLiblinearOnTheFeuShape) {
  // train_svm_direction normalizes the rows, appends the bias and orients
  // the unit normal toward the positives: compare it with liblinear's w.
  const Problem p = top_and_bottom(5000, 512, 100, 6);
  std::vector<float> positives, negatives;
  for (int64_t i = 0; i < p.l; ++i) {
    auto& into = p.labels[i] > 0 ? positives : negatives;
    into.insert(into.end(), p.rows.begin() + i * p.n, p.rows.begin() + i * p.n + 512);
  }
  const SvmDirection svm = train_svm_direction(positives.data(), 100, negatives.data(), 100, 512);
  const std::vector<double> reference = liblinear_w(p, 1.0, 1e-4);
  const std::vector<double> reference_normal(reference.begin(), reference.begin() + 512);
  const std::vector<double> normal(svm.normal.begin(), svm.normal.end());
  EXPECT_GT(cosine(normal, reference_normal), 0.9999);
  EXPECT_GT(svm.iterations, 1);
  EXPECT_EQ(svm.accuracy, 1.0);  // 200 points in 512-d are separable
}

}  // namespace
}  // namespace feu::edit
