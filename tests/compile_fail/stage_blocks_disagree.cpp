// expect: Stage: channel mismatch between blocks
// The repeated blocks expect 32 channels but the first block produces 64.
#include <ctnn/ctnn.hpp>
using Layer = ctnn::Stage<ctnn::ResidualBlock<32, 64, 2>, ctnn::ResidualBlock<32, 32, 1>, 2>;
ctnn::Model<Layer, ctnn::Shape<32, 16, 16>> model;
