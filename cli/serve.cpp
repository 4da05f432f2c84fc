// `medimg serve`: placeholder until the embedded lighttpd launcher lands.
#include <cstdio>

#include "commands.hpp"

namespace medimg::cli {

int run_serve(const Args&) {
    std::fputs("medimg serve: not available in this build\n", stderr);
    return 1;
}

}  // namespace medimg::cli
