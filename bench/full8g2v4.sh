# The `full8g2v4` search setting and data of the powered confirmation
# (docs/search-quality.md), sourced by bench/powered_confirmation.sh and
# bench/size_baseline.sh so that both name the same thing: every candidate trained from
# scratch for E_max = 8 epochs at C = 8, 4 + 4 individuals, 2 generations, 32x32 images,
# 4,000 validation images, the 10,000-image test set of data/cifar10-cpu-t10k.npz.
V=full8g2v4:search.evaluation=full,search.weight_sharing=false,search.channels=8,search.max_params=42000,search.max_epochs=8,search.population=4,search.reduction_population=4,search.max_generations=2,search.budget_hours=6,datasets.cifar10.val_size=4000
DATA=(--set datasets.cifar10.image_size=null --set datasets.cifar10.path=data/cifar10-cpu-t10k.npz)
SEEDS="seeds=[$(seq -s, 14 38)]"
