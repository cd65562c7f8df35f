// expect: Linear: in-features differ from the flattened input size
// 8 channels of 4×4 flatten to 128 values, not 64.
#include <ctnn/ctnn.hpp>
using Net = ctnn::Sequential<ctnn::Conv2d<1, 8, 3, 1, 1>, ctnn::Flatten, ctnn::Linear<64, 10>>;
ctnn::Model<Net, ctnn::Shape<1, 4, 4>> model;
