// expect: block fed the wrong channel count
// layer2 of a ResNet50 fed 64 channels (layer1 outputs 64·4 = 256, which Bottleneck<256, 128, 2> expects).
#include <ctnn/ctnn.hpp>
using Net = ctnn::Sequential<ctnn::Conv2d<3, 64, 3, 1, 1>, ctnn::Bottleneck<256, 128, 2>>;
ctnn::Model<Net, ctnn::Shape<3, 32, 32>> model;
