// torchvision's ResNet family as types: blocks, stages and the five standard depths.
#pragma once

#include <type_traits>

#include "ctnn/compose/named.hpp"
#include "ctnn/compose/residual.hpp"
#include "ctnn/compose/sequential.hpp"
#include "ctnn/compose/stage.hpp"
#include "ctnn/layers/batchnorm2d.hpp"
#include "ctnn/layers/conv2d.hpp"
#include "ctnn/layers/flatten.hpp"
#include "ctnn/layers/identity.hpp"
#include "ctnn/layers/linear.hpp"
#include "ctnn/layers/pooling.hpp"
#include "ctnn/layers/relu.hpp"

namespace ctnn {

/// Projection<In, Out, Stride>: 1×1 convolution with the block's stride, then BatchNorm; the
/// shortcut used when a block changes its shape. PyTorch: nn.Sequential(conv1x1, BatchNorm2d).
template <int In, int Out, int Stride>
using Projection = Sequential<Conv2d<In, Out, 1, Stride, 0>, BatchNorm2d<Out>>;

/// The shortcut a block of In -> Out channels and the given stride needs, under PyTorch name Name.
template <FixedString Name, int In, int Out, int Stride>
using ShortcutFor = std::conditional_t<(Stride != 1 || In != Out), Named<Name, Projection<In, Out, Stride>>, Identity>;

/// Adds what a block states about itself to a Residual, and checks the channel count it is fed.
template <class Body, int In, int Out, int Expansion>
struct Block : Body {
  static constexpr int in_channels = In;
  static constexpr int out_channels = Out;
  static constexpr int expansion = Expansion;

  template <ShapeType S, class T>
  class Module : public Bind<Body, S, T> {
    static_assert(S::channels == In, "block fed the wrong channel count (channel mismatch at the block's input)");
  };
};

/// ResidualBlock<In, Out, Stride>: torchvision's BasicBlock (expansion 1): conv3×3 (stride S), BN,
/// ReLU, conv3×3, BN, plus the shortcut, then add and ReLU. [In, H, W] -> [Out, H/S, W/S].
/// Names: conv1, bn1, conv2, bn2, downsample.{0,1}. PyTorch: torchvision.models.resnet.BasicBlock.
template <int In, int Out, int Stride = 1>
struct ResidualBlock
    : Block<Residual<Sequential<Named<"conv1", Conv2d<In, Out, 3, Stride, 1>>, Named<"bn1", BatchNorm2d<Out>>,
                                Named<"relu", ReLU>, Named<"conv2", Conv2d<Out, Out, 3, 1, 1>>,
                                Named<"bn2", BatchNorm2d<Out>>>,
                     ShortcutFor<"downsample", In, Out, Stride>>,
            In, Out, 1> {};

/// Bottleneck<In, Planes, Stride>: torchvision's Bottleneck (expansion 4): conv1×1 In->Planes, BN,
/// ReLU, conv3×3 (stride S), BN, ReLU, conv1×1 Planes->4·Planes, BN, plus the shortcut, add, ReLU.
/// [In, H, W] -> [4·Planes, H/S, W/S]. PyTorch: torchvision.models.resnet.Bottleneck (v1.5).
template <int In, int Planes, int Stride = 1>
struct Bottleneck
    : Block<Residual<Sequential<Named<"conv1", Conv2d<In, Planes, 1, 1, 0>>, Named<"bn1", BatchNorm2d<Planes>>,
                                Named<"relu", ReLU>, Named<"conv2", Conv2d<Planes, Planes, 3, Stride, 1>>,
                                Named<"bn2", BatchNorm2d<Planes>>, Named<"relu", ReLU>,
                                Named<"conv3", Conv2d<Planes, 4 * Planes, 1, 1, 0>>,
                                Named<"bn3", BatchNorm2d<4 * Planes>>>,
                     ShortcutFor<"downsample", In, 4 * Planes, Stride>>,
            In, 4 * Planes, 4> {};

/// MakeStage<Block, In, Planes, Count, Stride>: Count blocks, the first carrying the stride and the
/// channel change, as the seed's _make_layer.
template <template <int, int, int> class BlockType, int In, int Planes, int Count, int Stride>
using MakeStage =
    Stage<BlockType<In, Planes, Stride>, BlockType<Planes * BlockType<1, 1, 1>::expansion, Planes, 1>, Count>;

/// Blocks per stage, e.g. StageSizes<3, 4, 6, 3> for ResNet50.
template <int L1, int L2, int L3, int L4>
struct StageSizes {};

namespace detail {
template <template <int, int, int> class BlockType, class Sizes, int Classes, int InChannels>
struct ResNetLayout;
template <template <int, int, int> class BlockType, int L1, int L2, int L3, int L4, int Classes, int InChannels>
struct ResNetLayout<BlockType, StageSizes<L1, L2, L3, L4>, Classes, InChannels> {
  static constexpr int e = BlockType<1, 1, 1>::expansion;
  using type = Sequential<Named<"conv1", Conv2d<InChannels, 64, 7, 2, 3>>, Named<"bn1", BatchNorm2d<64>>,
                          Named<"relu", ReLU>, Named<"maxpool", MaxPool2d<3, 2, 1>>,
                          Named<"layer1", MakeStage<BlockType, 64, 64, L1, 1>>,
                          Named<"layer2", MakeStage<BlockType, 64 * e, 128, L2, 2>>,
                          Named<"layer3", MakeStage<BlockType, 128 * e, 256, L3, 2>>,
                          Named<"layer4", MakeStage<BlockType, 256 * e, 512, L4, 2>>,
                          Named<"avgpool", GlobalAvgPool2d>, Named<"flatten", Flatten>,
                          Named<"fc", Linear<512 * e, Classes>>>;
};
}  // namespace detail

/// ResNet<Block, StageSizes<...>, Classes, InChannels>: torchvision's layout — conv7×7/2 to 64,
/// BN, ReLU, max pool 3×3/2, four stages of widths 64/128/256/512 (strides 1/2/2/2), global
/// average pool, fc. Any input of at least 1×1 after the stem works (e.g. 1×28×28 for MNIST).
/// PyTorch: torchvision.models.ResNet(block, layers, num_classes) with conv1 taking InChannels.
template <template <int, int, int> class BlockType, class Sizes, int Classes = 1000, int InChannels = 3>
using ResNet = typename detail::ResNetLayout<BlockType, Sizes, Classes, InChannels>::type;

template <int Classes = 1000, int InChannels = 3>
using ResNet18 = ResNet<ResidualBlock, StageSizes<2, 2, 2, 2>, Classes, InChannels>;
template <int Classes = 1000, int InChannels = 3>
using ResNet34 = ResNet<ResidualBlock, StageSizes<3, 4, 6, 3>, Classes, InChannels>;
template <int Classes = 1000, int InChannels = 3>
using ResNet50 = ResNet<Bottleneck, StageSizes<3, 4, 6, 3>, Classes, InChannels>;
template <int Classes = 1000, int InChannels = 3>
using ResNet101 = ResNet<Bottleneck, StageSizes<3, 4, 23, 3>, Classes, InChannels>;
template <int Classes = 1000, int InChannels = 3>
using ResNet152 = ResNet<Bottleneck, StageSizes<3, 8, 36, 3>, Classes, InChannels>;

}  // namespace ctnn
