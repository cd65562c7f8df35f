// expect: AvgPool2d: kernel larger than padded input
// The seed's avg_pool2d(out, 4) after layer4 on a 3×3 map (a 24×24 input instead of 28×28).
#include <ctnn/ctnn.hpp>
ctnn::Model<ctnn::AvgPool2d<4>, ctnn::Shape<128, 3, 3>> model;
