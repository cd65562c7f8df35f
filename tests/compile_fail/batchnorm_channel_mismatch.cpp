// expect: BatchNorm2d: channel mismatch
#include <ctnn/ctnn.hpp>
using Net = ctnn::Sequential<ctnn::Conv2d<1, 16, 3, 1, 1>, ctnn::BatchNorm2d<32>>;
ctnn::Model<Net, ctnn::Shape<1, 28, 28>> model;
