// Prompt templates for text directions (StyleCLIP global_directions/MapTS.py).
// Plain C++.
#pragma once

#include <string>
#include <vector>

namespace feu::edit {

enum class TemplateSet {
  kImagenet,  // StyleCLIP's 79 ImageNet templates (CLIP's 80 minus "a photo of many {}.")
  kNone,      // the bare instruction, one prompt
};

// "imagenet" | "none"; anything else is an invalid_argument error naming the accepted values.
TemplateSet parse_template_set(const std::string& name);
const char* template_set_name(TemplateSet set);

// StyleCLIP's imagenet_templates, in its order; each has one "{}".
const std::vector<std::string>& imagenet_templates();

// The prompts whose unit embeddings are averaged into T(text):
// every template with "{}" replaced by `text` (kImagenet), or {text} (kNone).
std::vector<std::string> prompts_for(const std::string& text, TemplateSet set);

}  // namespace feu::edit
