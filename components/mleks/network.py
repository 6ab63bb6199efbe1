"""MLVpc: the network a stack creates when it brings none, built so the control plane starts first.

Why our own resources rather than awsx's ``ec2.Vpc``: awsx's Vpc is a remote
component, and a remote component's outputs resolve only once *all* its
children exist, NAT gateways included (one to two minutes each).  The EKS
control plane (about ten minutes) needs only the subnet ids, so behind awsx it
started a couple of minutes late on every first create.  Here the subnets are
plain resources: the cluster waits for them alone, and only the node groups
wait for egress (:attr:`MLVpc.egress`, the NAT routes), which they need to
pull images and join.

The layout: per AZ a private subnet of an
eighth of the VPC (pods take VPC addresses under the VPC CNI) and a public
subnet of a 64th, for NAT gateways and load balancers only; one NAT gateway,
or one per AZ; private route tables per AZ.  Subnets carry the tags the AWS
Load Balancer Controller reads (``kubernetes.io/role/internal-elb``,
``kubernetes.io/role/elb``).  Public subnets do not give instances public
addresses: nothing but NAT gateways and opted-in load balancers lives there.

:func:`subnet_plan` is pure; :class:`MLVpc` registers it.
"""

from __future__ import annotations

import ipaddress
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_aws as aws
from pydantic import Field, field_validator, model_validator

from mleks.errors import ConfigError, ConfigErrors
from mleks.validation.schema import Model

TOKEN = "mleks:network:MLVpc"
MIN_PREFIX, MAX_PREFIX = 16, 22
PRIVATE_SHARE = 3  # private subnets are /(prefix + 3): an eighth of the VPC each
PUBLIC_SHARE = 6  # public subnets are /(prefix + 6), carved from the last eighth
INTERNAL_ELB_TAG = "kubernetes.io/role/internal-elb"
PUBLIC_ELB_TAG = "kubernetes.io/role/elb"


class VpcArgs(Model):
    """The network.  Either create one (default) or bring an existing VPC.

    A created VPC has a private and a public subnet in each AZ; nodes only
    ever run in the private ones.
    """

    id: str | None = None
    """An existing VPC id (``vpc-...``).  Default: create a VPC."""

    private_subnet_ids: list[str] = Field(default_factory=list)
    """With ``id``: private subnets for nodes, in at least two AZs."""

    public_subnet_ids: list[str] = Field(default_factory=list)
    """With ``id``: public subnets, only needed for internet-facing load balancers."""

    cidr_block: str = "10.0.0.0/16"
    """CIDR of a created VPC, /16 to /22: each AZ gets a private subnet of an eighth of it (pods take
    VPC addresses) and a public one of a 64th.  Default: 10.0.0.0/16."""

    availability_zone_count: int = Field(default=3, ge=2, le=6)
    """AZs of a created VPC.  Default: 3 (EKS needs at least 2)."""

    nat_gateways: Literal["single", "one-per-az"] = "single"
    """NAT gateways of a created VPC: ``single`` (cheaper) or ``one-per-az`` (survives an AZ loss).  Default: single."""

    @field_validator("cidr_block")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError:
            raise ConfigError("", value, "an IPv4 CIDR block between /16 and /22, e.g. 10.0.0.0/16", "not a CIDR block") from None
        if net.version != 4 or not MIN_PREFIX <= net.prefixlen <= MAX_PREFIX:
            raise ConfigError(
                "",
                value,
                f"an IPv4 block with a prefix length from /{MIN_PREFIX} to /{MAX_PREFIX}",
                "the VPC would be too large for AWS or too small for a public /28 per AZ",
            )
        return value

    @model_validator(mode="after")
    def _existing_or_new(self) -> VpcArgs:
        if self.id is None:
            for key, ids in (("privateSubnetIds", self.private_subnet_ids), ("publicSubnetIds", self.public_subnet_ids)):
                if ids:
                    raise ConfigError(key, ids, "no subnet ids unless vpc.id names an existing VPC", "subnets given without a VPC id")
            return self
        if not self.id.startswith("vpc-"):
            raise ConfigError("id", self.id, "an existing VPC id such as vpc-0abc1234", "not a VPC id")
        if len(self.private_subnet_ids) < 2:
            raise ConfigError("privateSubnetIds", self.private_subnet_ids, "at least two private subnet ids (subnet-...) in different AZs", "EKS needs two AZs")
        for key, ids in (("privateSubnetIds", self.private_subnet_ids), ("publicSubnetIds", self.public_subnet_ids)):
            for i, sid in enumerate(ids):
                if not sid.startswith("subnet-"):
                    raise ConfigError(f"{key}[{i}]", sid, "a subnet id such as subnet-0abc1234", "not a subnet id")
        return self


@dataclass(frozen=True)
class SubnetPlan:
    """The CIDR blocks of a created VPC, one private and one public block per AZ, in AZ order."""

    private: tuple[str, ...]
    public: tuple[str, ...]


def subnet_plan(cidr: str, zones: int) -> SubnetPlan:
    """Private /(p+3) blocks from the start of the VPC, public /(p+6) blocks from its last eighth (pure)."""
    net = ipaddress.IPv4Network(cidr)
    eighths = list(net.subnets(prefixlen_diff=PRIVATE_SHARE))
    if zones > len(eighths) - 1:
        raise ValueError(f"at most {len(eighths) - 1} AZs fit a VPC split in eighths")
    public = list(eighths[-1].subnets(prefixlen_diff=PUBLIC_SHARE - PRIVATE_SHARE))[:zones]
    return SubnetPlan(tuple(str(b) for b in eighths[:zones]), tuple(str(b) for b in public))


class MLVpc(pulumi.ComponentResource):
    """A VPC with private and public subnets in ``availability_zone_count`` AZs and NAT egress.

    Outputs: ``vpc_id``, ``private_subnet_ids``, ``public_subnet_ids``.
    Attribute ``egress``: what a node must wait for before it can reach the
    internet (the private default routes and their route table associations).
    """

    def __init__(self, name: str, args: VpcArgs, *, tags: dict[str, str] | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        if args.id is not None:
            raise ValueError("MLVpc creates a VPC; with vpc.id, use the existing one instead")
        count = args.availability_zone_count
        super().__init__(TOKEN, name, None, opts)
        # An Output, not a blocking look-up: a synchronous invoke inside a running program can
        # race the stack's own output registration.  The stack program checks the count before
        # anything is registered (stacks.topology.lookup_errors).
        zones = aws.get_availability_zones_output(**_REGULAR_ZONES, opts=pulumi.InvokeOptions(parent=self)).names.apply(_checked_zones(count))
        tags = dict(tags or {})
        child = pulumi.ResourceOptions(parent=self)
        plan = subnet_plan(args.cidr_block, count)

        def named(suffix: str) -> dict[str, str]:
            return {**tags, "Name": f"{name}-{suffix}"}

        vpc = aws.ec2.Vpc(f"{name}", cidr_block=args.cidr_block, enable_dns_hostnames=True, enable_dns_support=True, tags=named("vpc"), opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=named("igw"), opts=child)
        public_rt = aws.ec2.RouteTable(f"{name}-public", vpc_id=vpc.id, tags=named("public"), opts=child)
        aws.ec2.Route(f"{name}-public-default", route_table_id=public_rt.id, destination_cidr_block="0.0.0.0/0", gateway_id=igw.id, opts=child)

        def make_subnet(kind: str, i: int, cidr: str, role_tag: str) -> aws.ec2.Subnet:
            return aws.ec2.Subnet(
                f"{name}-{kind}-{i + 1}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=zones.apply(operator.itemgetter(i)),
                map_public_ip_on_launch=False,
                tags={**named(f"{kind}-{i + 1}"), role_tag: "1"},
                opts=child,
            )

        public, private, nat_ids = [], [], []
        for i in range(count):
            subnet = make_subnet("public", i, plan.public[i], PUBLIC_ELB_TAG)
            aws.ec2.RouteTableAssociation(f"{name}-public-{i + 1}", subnet_id=subnet.id, route_table_id=public_rt.id, opts=child)
            public.append(subnet)
            if i == 0 or args.nat_gateways == "one-per-az":
                eip = aws.ec2.Eip(f"{name}-nat-{i + 1}", domain="vpc", tags=named(f"nat-{i + 1}"), opts=child)
                nat = aws.ec2.NatGateway(
                    f"{name}-nat-{i + 1}",
                    allocation_id=eip.allocation_id,
                    subnet_id=subnet.id,
                    tags=named(f"nat-{i + 1}"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
                nat_ids.append(nat.id)
        self.egress: list[pulumi.Resource] = []
        for i in range(count):
            subnet = make_subnet("private", i, plan.private[i], INTERNAL_ELB_TAG)
            table = aws.ec2.RouteTable(f"{name}-private-{i + 1}", vpc_id=vpc.id, tags=named(f"private-{i + 1}"), opts=child)
            route = aws.ec2.Route(
                f"{name}-private-{i + 1}-default",
                route_table_id=table.id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nat_ids[i] if args.nat_gateways == "one-per-az" else nat_ids[0],
                opts=child,
            )
            association = aws.ec2.RouteTableAssociation(f"{name}-private-{i + 1}", subnet_id=subnet.id, route_table_id=table.id, opts=child)
            private.append(subnet)
            self.egress += [route, association]

        self.vpc_id: pulumi.Output[str] = vpc.id
        self.private_subnet_ids: pulumi.Output[list[str]] = pulumi.Output.all(*[s.id for s in private])
        self.private_subnet_list: list[pulumi.Output[str]] = [s.id for s in private]
        """The private subnet ids one by one (their number is known before deployment)."""
        self.public_subnet_ids: pulumi.Output[list[str]] = pulumi.Output.all(*[s.id for s in public])
        self.register_outputs({"vpc_id": self.vpc_id, "private_subnet_ids": self.private_subnet_ids, "public_subnet_ids": self.public_subnet_ids})


# Regular AZs only: Local and Wavelength Zones lack most instance types.
_REGULAR_ZONES: dict[str, Any] = {
    "state": "available",
    "filters": [aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
}


def _checked_zones(count: int) -> Callable[[Sequence[str]], list[str]]:
    def check(names: Sequence[str]) -> list[str]:
        error = zone_count_error("availability_zone_count", count, sorted(names))
        if error is not None:
            raise ConfigErrors([error])
        return sorted(names)

    return check


def regular_zones() -> list[str]:
    """The region's regular AZs, sorted, looked up now (a synchronous invoke, for checks before any resource)."""
    return sorted(aws.get_availability_zones(**_REGULAR_ZONES).names)


def zone_count_error(key: str, count: int, zones: Sequence[str]) -> ConfigError | None:
    """An error keyed ``key`` when the region has fewer regular AZs than ``count``."""
    if len(zones) >= count:
        return None
    return ConfigError(
        key, count, f"at most {len(zones)}, the regular AZs of this region ({', '.join(zones)})", f"the region has only {len(zones)} regular AZs"
    )
