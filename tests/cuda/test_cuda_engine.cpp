// The engine on a CUDA device retrieves with GpuCorpusScan (edit/gpu_scan.h): the same
// positives, negatives and top hits as the CPU engine's int8 scan. The known-truth world's
// models run on the CPU either way; only retrieval moves. Skipped without a GPU.
#include <gtest/gtest.h>

#include <vector>

#include "cuda_support.h"
#include "edit/engine.h"
#include "known_truth_world.h"

namespace feu::edit {
namespace {

std::vector<int64_t> ids(const nlohmann::json& hits) {
  std::vector<int64_t> out;
  for (const auto& hit : hits) out.push_back(hit["id"].get<int64_t>());
  return out;
}

TEST(CudaEngine, RetrievalOnTheGpuReturnsTheCpuEnginesIds) {
  FEU_SKIP_WITHOUT_CUDA_GPU();
  static toy::ToyWorld world;
  EditDefaults defaults;
  defaults.k_pos = 40;
  defaults.k_neg = 60;
  auto cpu = Engine::from_parts(world.generator, world.text, world.artifacts, defaults);
  auto gpu = Engine::from_parts(world.generator, world.text, world.artifacts, defaults, nullptr, 0.1, "cuda:0");
  EXPECT_EQ(cpu->info()["retrieval"], "cpu_scan");
  EXPECT_EQ(gpu->info()["retrieval"], "gpu_scan");
  for (const char* instruction : {"red hair", "blue skin", "bright eyes", "green background"}) {
    EditRequest request;
    request.instruction = instruction;
    request.seed = 3;
    const nlohmann::json a = cpu->explain(request)["retrieval"], b = gpu->explain(request)["retrieval"];
    EXPECT_EQ(ids(b["positives"]), ids(a["positives"])) << instruction;
    EXPECT_EQ(ids(b["negatives"]), ids(a["negatives"])) << instruction;
    EXPECT_EQ(ids(gpu->retrieve(instruction, 25)["hits"]), ids(cpu->retrieve(instruction, 25)["hits"]))
        << instruction;
    // The whole edit agrees too: the same training set gives the same SVM and the same images.
    const EditResult x = cpu->edit(request), y = gpu->edit(request);
    ASSERT_EQ(x.images.size(), y.images.size());
    for (size_t i = 0; i < x.images.size(); ++i) EXPECT_EQ(x.images[i].bytes, y.images[i].bytes) << instruction;
  }
}

}  // namespace
}  // namespace feu::edit
