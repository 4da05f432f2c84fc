// The subcommands of the `medimg` program. Each takes the arguments after
// its name and returns the process exit code (man/medimg.1: 0 success,
// 2 usage error, 3 invalid or corrupt input file, 1 any other failure).
#pragma once

#include <string>
#include <vector>

namespace medimg::cli {

using Args = std::vector<std::string>;

int run_filter(const Args& args);   // cli/filter.cpp
int run_labels(const Args& args);   // cli/labels.cpp
int run_info(const Args& args);     // cli/info.cpp
int run_demo(const Args& args);     // cli/demo.cpp
int run_serve(const Args& args);    // cli/serve.cpp

}  // namespace medimg::cli
