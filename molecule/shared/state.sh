# What the kvmnet modules could change on a lab host, as stable text: NetworkManager profiles
# and keyfiles, links (with macvtap details), addresses, libvirt networks and domains (inactive
# and live XML), kvmnet's lock and memory files. Used to prove a check-mode run changed nothing.
export LC_ALL=C
virsh="virsh -q -c qemu:///system"
echo "== nm profiles"; nmcli -t -f NAME,UUID,TYPE,AUTOCONNECT,DEVICE,FILENAME connection show | sort
for f in /etc/NetworkManager/system-connections/*; do [ -f "$f" ] && { echo "== keyfile $f"; cat "$f"; }; done
# carrier comes and goes by itself (a guest's tap joining virbr0): not a change of ours
carrier='s/^[0-9]*: //; s/NO-CARRIER,//; s/,LOWER_UP//; s/ state [A-Z]* / /'
echo "== links"; ip -o link show | sed "$carrier" | sort
echo "== macvtap links"; ip -o -d link show type macvtap | sed "$carrier" | sort
# a DHCP lease's remaining lifetime counts down by itself, and a new link's IPv6 address leaves
# duplicate address detection ("tentative") by itself: not changes of ours
echo "== addresses"; ip -o addr show | sed 's/^[0-9]*: //; s/valid_lft [0-9a-z]* preferred_lft [0-9a-z]*//; s/ tentative//' | sort
echo "== networks"; $virsh net-list --all
for n in $($virsh net-list --all --name); do echo "== network $n"; $virsh net-dumpxml --inactive "$n"; $virsh net-info "$n"; done
echo "== domains"; $virsh list --all
for d in $($virsh list --all --name); do
  echo "== domain $d (inactive)"; $virsh dumpxml --inactive "$d"
  echo "== domain $d (live)"; $virsh dumpxml "$d"
done
echo "== kvmnet files"; ls -A /var/lib/kvmnet /run/lock 2>/dev/null
true
