// Gather and split along dim 0: N request tensors -> one batch tensor -> N result views.
#pragma once

#include <cstddef>
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

// Whether `whole` has `rows` rows along dim 0, so that SliceRows may cut it into requests.
bool SplitsIntoRows(const HostTensor& whole, int64_t rows);

// Rows [first_row, first_row + rows) of `whole` (which has at least that many): for numeric
// data a view sharing `whole.owner`, or a copy when `whole` holds at least kCopySlicesOfBytes
// and the rows are less than half of it (a view would keep the whole buffer alive as long as
// the result is kept); a copy for strings.
HostTensor SliceRows(const HostTensor& whole, int64_t first_row, int64_t rows);
inline constexpr size_t kCopySlicesOfBytes = size_t{1} << 20;

}  // namespace engine
