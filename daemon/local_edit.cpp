#include "local_edit.h"

#include <algorithm>

#include "edit/engine.h"
#include "image/contact_sheet.h"

namespace feu::daemon {

LocalEngine::LocalEngine(const std::string& config_path) {
  ConfigMap root = ConfigMap::load_file(config_path);
  root.has("daemon");  // the daemon's section: not needed in-process
  engine_ = edit::Engine::create(edit::EngineConfig::from_config(root));
}

LocalEngine::~LocalEngine() = default;

nlohmann::json LocalEngine::info() const { return engine_->info(); }

std::vector<edit::EditResult> LocalEngine::edit(const std::vector<edit::EditRequest>& requests, size_t batch) {
  std::vector<edit::EditResult> results;
  for (size_t start = 0; start < requests.size(); start += batch) {
    const std::vector<edit::EditRequest> chunk(requests.begin() + start,
                                               requests.begin() + std::min(requests.size(), start + batch));
    for (edit::EditResult& result : engine_->edit_batch(chunk)) results.push_back(std::move(result));
  }
  return results;
}

std::vector<edit::EditResult> run_local_edits(const std::string& config_path,
                                              const std::vector<edit::EditRequest>& requests, size_t batch) {
  return LocalEngine(config_path).edit(requests, batch);
}

nlohmann::json run_local_explain(const std::string& config_path, const edit::EditRequest& request,
                                 const std::string& sheet_path, int thumb) {
  ConfigMap root = ConfigMap::load_file(config_path);
  root.has("daemon");
  auto engine = edit::Engine::create(edit::EngineConfig::from_config(root));
  nlohmann::json explained = engine->explain(request);
  if (sheet_path.empty()) return explained;
  const std::string corpus_root = explained["corpus_root"].get<std::string>();
  std::vector<image::SheetItem> items;
  int64_t missing = 0;
  for (const char* side : {"positives", "negatives"}) {
    bool first = true;
    for (const auto& hit : explained["retrieval"][side]) {
      image::SheetItem item;
      item.frame = side[0] == 'p' ? std::array<uint8_t, 3>{40, 200, 60} : std::array<uint8_t, 3>{220, 50, 40};
      item.new_row = first;
      first = false;
      try {
        item.image = image::decode_file(corpus_root + "/" + hit["path"].get<std::string>());
      } catch (const Error&) {
        ++missing;  // artifacts copied without the corpus images: a placeholder keeps the layout
      }
      items.push_back(std::move(item));
    }
  }
  image::write_image(sheet_path, image::contact_sheet(items, thumb, 10));
  explained["contact_sheet"] = {{"path", sheet_path}, {"images", items.size()}, {"missing", missing}};
  return explained;
}

}  // namespace feu::daemon
