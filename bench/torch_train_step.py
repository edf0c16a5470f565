"""PyTorch reference for bench/backbone-train.mjs: training-step throughput of a
torchvision ResNet (forward + backward + SGD momentum update), printed as JSON.

    /usr/bin/python3 bench/torch_train_step.py --arch resnet18 --stem small --size 32 --batch 128 --steps 3 --threads 2
"""
import argparse
import json
import time

import torch
import torchvision


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--stem", default="small", choices=["small", "imagenet"])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--profile", action="store_true", help="print the per-op table of one step instead")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = getattr(torchvision.models, args.arch)(weights=None, num_classes=args.classes)
    if args.stem == "small":
        model.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = torch.nn.Identity()
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, args.classes, (args.batch,))
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return float(loss)

    for _ in range(args.warmup):
        step()
    if args.profile:
        with torch.autograd.profiler.profile() as prof:
            for _ in range(args.steps):
                step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
        return
    times = []
    cpu_start = time.process_time()
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    cpu_seconds = time.process_time() - cpu_start
    seconds = sum(times)
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "step_times": times,
        "images_per_second": args.batch * args.steps / seconds,
    }))


if __name__ == "__main__":
    main()
