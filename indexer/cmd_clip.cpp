// feu-indexer commands: tokenize, encode-text, encode-image.
#include "commands.h"

namespace feu::indexer {

void register_clip_commands(CLI::App& app) {}

}  // namespace feu::indexer
