// expect: Conv2d: kernel larger than padded input
// A 7×7 kernel on a 4×4 image padded by 1 (6×6).
#include <ctnn/ctnn.hpp>
ctnn::Model<ctnn::Conv2d<1, 4, 7, 1, 1>, ctnn::Shape<1, 4, 4>> model;
