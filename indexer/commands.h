// Sub-commands of feu-indexer. Each cmd_*.cpp file registers the commands of
// one library module; the callbacks throw feu::Error on bad input.
#pragma once

#include <CLI/CLI.hpp>

namespace feu::indexer {

// generate (cmd_stylegan2.cpp)
void register_stylegan2_commands(CLI::App& app);
// tokenize, encode-text, encode-image (cmd_clip.cpp)
void register_clip_commands(CLI::App& app);
// align (cmd_face.cpp)
void register_face_commands(CLI::App& app);
// embed, stats, directions, import-styleclip, publish, verify (cmd_index.cpp)
void register_index_commands(CLI::App& app);
// encode-face (cmd_e4e.cpp)
void register_e4e_commands(CLI::App& app);

}  // namespace feu::indexer
