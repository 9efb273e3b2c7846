// Internal: the generator's StyleSpace as the torch-free LayerSpec table.
#pragma once

#include <vector>

#include "index/directions.h"
#include "stylegan2/generator.h"

namespace feu::index {

std::vector<LayerSpec> layer_specs_of(const stylegan2::StyleSpace& space);

}  // namespace feu::index
