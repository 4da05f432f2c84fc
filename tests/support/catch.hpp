// One place that includes Catch2 (2.x on Debian 12; generators and tables
// exist in v3 too, so only this line changes on an upgrade).
#pragma once
#include <catch2/catch.hpp>
