// What every feu program does around its commands: one clear error line and a
// non-zero exit for anything that goes wrong.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace feu {

// Parses and runs `app`. Returns the process exit code: 0 on success, CLI11's
// code for usage errors, 2 for a feu::Error (printed as
// "<program>: error [code]: message"), 3 for anything unexpected.
int run_cli(CLI::App& app, int argc, char** argv);

// Parses "1,2,5-7" into {1,2,5,6,7}. Errors name the bad item.
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& what);

}  // namespace feu
