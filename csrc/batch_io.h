// Gather and scatter along dim 0: N request tensors -> one batch tensor -> N result views.
#pragma once

#include <cstdint>
#include <vector>

#include "tensor.h"

namespace engine {

// Concatenates `parts` along dim 0. All parts have the same element type and the same
// non-batch dims (the batch key guarantees it). With a single part it returns a borrowing copy
// of that part's header: no data is copied. Numeric data goes into `scratch` when given (grown
// as needed, never shrunk; the result borrows it until the next Gather into it), else into a
// new buffer the result owns. Reusing one scratch per model instance saves an allocation (and
// a zero fill) per batch.
HostTensor Gather(const std::vector<const HostTensor*>& parts,
                  std::vector<uint8_t>* scratch = nullptr);

// Whether `whole` has `rows` rows along dim 0 (and so can be scattered by them).
bool SplitsIntoRows(const HostTensor& whole, int64_t rows);

// Splits `whole` along dim 0 into consecutive pieces of `rows[i]` rows. Numeric pieces are
// views sharing `whole.owner`; strings are copied. Returns false (and leaves `pieces` empty)
// when `whole` is a scalar or its dim 0 is not the sum of `rows`.
bool Scatter(const HostTensor& whole, const std::vector<int64_t>& rows,
             std::vector<HostTensor>* pieces);

}  // namespace engine
