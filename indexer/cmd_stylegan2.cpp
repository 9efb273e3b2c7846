// feu-indexer commands: generate.
#include "commands.h"

namespace feu::indexer {

void register_stylegan2_commands(CLI::App& app) {}

}  // namespace feu::indexer
