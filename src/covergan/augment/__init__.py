"""CQT-domain augmentation: differentiable ops for GAN training and classic CSI transforms."""
