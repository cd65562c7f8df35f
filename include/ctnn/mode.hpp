#pragma once

namespace ctnn {

/// Train: BatchNorm normalises with batch statistics and updates its running statistics.
/// Eval: BatchNorm uses the running statistics. PyTorch: module.train() / module.eval().
enum class Mode { train, eval };

}  // namespace ctnn
