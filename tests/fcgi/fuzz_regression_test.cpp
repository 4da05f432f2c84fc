// The kept reproducers of the router fuzz target (tests/data/fuzz/router/),
// replayed through its own entry point (tests/fuzz/router_target.cpp).
#include "catch.hpp"
#include "fuzz_replay.hpp"

TEST_CASE("fuzz reproducers: router", "[fuzz][router]") {
    medimg::test::replay_fuzz_reproducers("router", medimg::fuzz::router_target);
}
