// The core's StatsSnapshot in the shape of Triton's ModelStatistics message.
#pragma once

#include <cstdint>
#include <string>

#include "grpc_service.pb.h"
#include "stats.h"

namespace engine::server {

// Triton's meaning: success/fail count requests (fail: refused, expired, cancelled or failed);
// queue and compute durations sum over successful requests; batch_stats has one entry per
// batch size that ran, with its count of executions and their compute time; inference_count
// counts rows, execution_count model runs. Durations in nanoseconds.
void FillModelStatistics(const std::string& name, int64_t version, const StatsSnapshot& stats,
                         inference::ModelStatistics* out);

}  // namespace engine::server
