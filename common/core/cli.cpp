#include "core/cli.h"

#include <iostream>

#include "core/error.h"

namespace feu {

int run_cli(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return 0;
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const Error& e) {
    std::cerr << app.get_name() << ": error [" << e.code_name() << "]: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << app.get_name() << ": error [internal]: " << e.what() << std::endl;
    return 3;
  }
}

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& what) {
  std::vector<int64_t> out;
  size_t start = 0;
  auto parse_one = [&](const std::string& item) -> int64_t {
    try {
      size_t used = 0;
      long long value = std::stoll(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
      return value;
    } catch (const std::exception&) {
      throw Error(ErrorCode::kInvalidArgument,
                  what + ": '" + item + "' is not an integer (expected e.g. 1,2,5-7)");
    }
  };
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty())
      throw Error(ErrorCode::kInvalidArgument, what + ": empty item in '" + text + "' (expected e.g. 1,2,5-7)");
    size_t dash = item.find('-', 1);
    if (dash != std::string::npos) {
      int64_t lo = parse_one(item.substr(0, dash));
      int64_t hi = parse_one(item.substr(dash + 1));
      if (hi < lo)
        throw Error(ErrorCode::kInvalidArgument, what + ": range '" + item + "' is reversed");
      if (hi - lo > 10'000'000)
        throw Error(ErrorCode::kInvalidArgument, what + ": range '" + item + "' is too large");
      for (int64_t v = lo; v <= hi; ++v) out.push_back(v);
    } else {
      out.push_back(parse_one(item));
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace feu
