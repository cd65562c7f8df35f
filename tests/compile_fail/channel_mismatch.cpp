// expect: Conv2d: channel mismatch
// A 16-channel convolution output fed to a convolution that expects 8 channels.
#include <ctnn/ctnn.hpp>
using Net = ctnn::Sequential<ctnn::Conv2d<1, 16, 3, 1, 1>, ctnn::ReLU, ctnn::Conv2d<8, 8, 3, 1, 1>>;
ctnn::Model<Net, ctnn::Shape<1, 28, 28>> model;
