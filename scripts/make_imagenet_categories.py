"""Writes src/models/imagenet_categories.txt: the 1,000 ImageNet-1k category names in the
order of the classifier's outputs, one per line, as the pinned torchvision's weights report
them (`ResNet18_Weights.IMAGENET1K_V1.meta["categories"]`; every ImageNet-1k weight set of
torchvision shares the list). Output index i of a torchvision ImageNet classifier is line i + 1.

    ~/.venvs/torch/bin/python scripts/make_imagenet_categories.py
"""

import os

import torchvision
from torchvision.models import ResNet18_Weights, ResNet50_Weights

assert torchvision.__version__.startswith("0.29.2"), torchvision.__version__

OUT = os.path.join(os.path.dirname(__file__), "..", "src", "models", "imagenet_categories.txt")


def main():
    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    assert categories == ResNet50_Weights.IMAGENET1K_V2.meta["categories"]
    assert len(categories) == 1000 and len(set(categories)) == 1000
    assert all(name == name.strip() and "\n" not in name for name in categories)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(categories) + "\n")
    print(f"wrote {len(categories)} names to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
