#!/usr/bin/env python3
"""Writes N reader rows as a registrar would export them: Chinese headers, UTF-8, one reader per
line, deterministic (seeded), with realistic Chinese names, departments, mobiles and emails.
Usage: gen_readers.py N OUT.csv"""
import random
import sys

FAMILY = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉宇浩凯晨瑞博文雪琳欣怡佳悦子涵梓轩思雨宁嘉泽一诺可馨昊然"
DEPTS = ["计算机学院", "文学院", "历史学院", "数学科学学院", "物理学院", "化学学院", "生命科学学院", "经济学院",
         "管理学院", "法学院", "外国语学院", "新闻传播学院", "哲学系", "艺术学院", "医学院", "图书馆"]
CATS = ["本科生"] * 6 + ["研究生"] * 3 + ["博士生", "教师", "职工"]


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    rnd = random.Random(20261128)
    with open(out, "w", encoding="utf-8", newline="") as f:
        f.write("读者证号,姓名,性别,出生日期,读者类型,院系,手机,电子邮件,有效期至\n")
        for i in range(n):
            name = rnd.choice(FAMILY) + "".join(rnd.choice(GIVEN) for _ in range(rnd.choice((1, 2, 2))))
            year = rnd.randint(1965, 2007)
            f.write("%s,%s,%s,%d-%02d-%02d,%s,%s,1%d%09d,r%d@example.edu.cn,%d-07-31\n" % (
                "R%08d" % (i + 1), name, rnd.choice("男女"), year, rnd.randint(1, 12), rnd.randint(1, 28),
                rnd.choice(CATS), rnd.choice(DEPTS), rnd.choice((3, 5, 7, 8, 9)), rnd.randrange(10**9),
                i + 1, rnd.randint(2027, 2031)))


if __name__ == "__main__":
    main()
