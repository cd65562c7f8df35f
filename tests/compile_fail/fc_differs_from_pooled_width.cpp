// expect: Linear: in-features differ from the flattened input size
// A ResNet50 body pools to 2048 features; an fc sized for ResNet18 (512) does not fit.
#include <ctnn/ctnn.hpp>
using Body = ctnn::Sequential<ctnn::Conv2d<3, 64, 7, 2, 3>, ctnn::MaxPool2d<3, 2, 1>,
                              ctnn::MakeStage<ctnn::Bottleneck, 64, 512, 1, 1>, ctnn::GlobalAvgPool2d, ctnn::Flatten,
                              ctnn::Linear<512, 10>>;
ctnn::Model<Body, ctnn::Shape<3, 64, 64>> model;
