// expect: Conv2d: zero stride
#include <ctnn/ctnn.hpp>
ctnn::Model<ctnn::Conv2d<1, 4, 3, 0, 1>, ctnn::Shape<1, 8, 8>> model;
