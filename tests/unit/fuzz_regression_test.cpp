// The kept fuzz reproducers of the library's targets (tests/data/fuzz/),
// replayed through the targets' own entry points (tests/fuzz/targets.hpp),
// so the sanitizer run (scripts/test.sh --sanitize) replays them too.
#include "catch.hpp"
#include "fuzz_replay.hpp"

using medimg::test::replay_fuzz_reproducers;
namespace fuzz = medimg::fuzz;

TEST_CASE("fuzz reproducers: header", "[fuzz][nifti][header]") {
    replay_fuzz_reproducers("header", fuzz::header_target);
}

TEST_CASE("fuzz reproducers: gzip", "[fuzz][nifti][gzip]") {
    replay_fuzz_reproducers("gzip", fuzz::gzip_target);
}

TEST_CASE("fuzz reproducers: filter", "[fuzz][labels][filter]") {
    replay_fuzz_reproducers("filter", fuzz::filter_target);
}

TEST_CASE("fuzz reproducers: label_set", "[fuzz][labels][label_set]") {
    replay_fuzz_reproducers("label_set", fuzz::label_set_target);
}

TEST_CASE("fuzz reproducers: path", "[fuzz][data_root]") {
    replay_fuzz_reproducers("path", fuzz::path_target);
}
