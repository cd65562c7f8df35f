// expect: Residual: residual branches differ in shape
// A strided main branch with an identity shortcut: [8, 4, 4] + [8, 8, 8] cannot be added.
#include <ctnn/ctnn.hpp>
using Block = ctnn::Residual<ctnn::Sequential<ctnn::Conv2d<8, 8, 3, 2, 1>, ctnn::BatchNorm2d<8>>, ctnn::Identity>;
ctnn::Model<Block, ctnn::Shape<8, 8, 8>> model;
