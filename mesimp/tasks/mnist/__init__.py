"""MNIST with the paper's MLP (784-500-500-10, ReLU); meProp on the hidden layers. data.name=fashion_mnist, kmnist
or a folder of your own MNIST-format files trains the same MLP on them."""

from mesimp.tasks.mnist.pipeline import build, data_files

__all__ = ["build", "data_files"]
