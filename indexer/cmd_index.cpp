// feu-indexer commands: embed, stats, directions, import-styleclip, publish, verify.
#include "commands.h"

namespace feu::indexer {

void register_index_commands(CLI::App& app) {}

}  // namespace feu::indexer
