// feu-indexer: the offline half of feu (models, corpus index, Δi directions,
// artifact publishing). Thin: every command lives in the library.
#include "core/cli.h"
#include "commands.h"
#include "tensor/cpu_allocation_cache.h"
#include "tensor/tensor_h5.h"

int main(int argc, char** argv) {
  feu::use_compute_threads();  // every core for CLIP, StyleGAN2 and e4e
  feu::tensor::set_cpu_allocation_cache(feu::tensor::kDefaultCpuAllocationCacheBytes);
  CLI::App app{"feu-indexer: build and publish feu's artifacts", "feu-indexer"};
  app.require_subcommand(1);
  feu::indexer::register_stylegan2_commands(app);
  feu::indexer::register_clip_commands(app);
  feu::indexer::register_face_commands(app);
  feu::indexer::register_index_commands(app);
  feu::indexer::register_e4e_commands(app);
  return feu::run_cli(app, argc, argv);
}
