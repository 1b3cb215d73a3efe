using System.Buffers.Binary;
using System.Text;

namespace QueueWorker.Ops.Tests;

/// <summary>Reads the DT_NEEDED entries (shared libraries a library links) of a 64-bit little-endian ELF file.</summary>
internal static class Elf
{
    private const uint PtLoad = 1, PtDynamic = 2;
    private const long DtNull = 0, DtNeeded = 1, DtStrtab = 5;

    public static IReadOnlyList<string> Needed(string path)
    {
        var bytes = File.ReadAllBytes(path);
        Assert.True(bytes.Length > 64 && bytes[0] == 0x7f && bytes[1] == 'E' && bytes[2] == 'L' && bytes[3] == 'F', $"{path} is not an ELF file");
        Assert.True(bytes[4] == 2 && bytes[5] == 1, $"{path} is not 64-bit little-endian ELF");

        var phoff = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(0x20));
        var phentsize = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(0x36));
        var phnum = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(0x38));

        var loads = new List<(ulong Vaddr, ulong Offset, ulong Size)>();
        (ulong Offset, ulong Size)? dynamic = null;
        for (var i = 0; i < phnum; i++)
        {
            var ph = bytes.AsSpan((int)(phoff + i * phentsize));
            var type = BinaryPrimitives.ReadUInt32LittleEndian(ph);
            var offset = BinaryPrimitives.ReadUInt64LittleEndian(ph[8..]);
            var vaddr = BinaryPrimitives.ReadUInt64LittleEndian(ph[16..]);
            var filesz = BinaryPrimitives.ReadUInt64LittleEndian(ph[32..]);
            if (type == PtLoad) loads.Add((vaddr, offset, filesz));
            if (type == PtDynamic) dynamic = (offset, filesz);
        }
        Assert.True(dynamic.HasValue, $"{path} has no dynamic section");

        var entries = new List<(long Tag, ulong Value)>();
        for (var at = dynamic.Value.Offset; at + 16 <= dynamic.Value.Offset + dynamic.Value.Size; at += 16)
        {
            var tag = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan((int)at));
            if (tag == DtNull) break;
            entries.Add((tag, BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan((int)at + 8))));
        }

        var strtabAddress = entries.Single(e => e.Tag == DtStrtab).Value;
        var load = loads.Single(l => strtabAddress >= l.Vaddr && strtabAddress < l.Vaddr + l.Size);
        var strtab = (int)(strtabAddress - load.Vaddr + load.Offset);

        return entries.Where(e => e.Tag == DtNeeded).Select(e =>
        {
            var start = strtab + (int)e.Value;
            var end = Array.IndexOf(bytes, (byte)0, start);
            return Encoding.ASCII.GetString(bytes, start, end - start);
        }).ToList();
    }
}
